"""The ``session-persistence`` command-line tool (install the ``cli`` extra).

``session-persistence --help`` lists the commands; ``docs/cli.md`` shows each with its output
and the exit codes.

This module imports neither click nor rich until the tool runs, so that the console script,
installed with the package even without the ``cli`` extra, can say in one line what is missing
instead of failing with a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import cli as cli

__all__ = ["cli", "main"]

_EXTRA_MODULES = frozenset({"click", "rich"})


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (the ``session-persistence`` console script).

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Raises:
        SystemExit: Always, with the command's exit code; 2, after one line on stderr, when
            the ``cli`` extra (click, rich) is not installed.
    """
    try:
        from ._app import main as run  # noqa: PLC0415 - imports click and rich: see above
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in _EXTRA_MODULES:
            raise
        sys.stderr.write(
            f"error: the command-line tool needs the 'cli' extra ({error}); install it with "
            "pip install 'session-persistence[cli]'\n"
        )
        raise SystemExit(2) from None
    run(argv)


def __getattr__(name: str) -> Any:
    """``cli`` (the click group), imported on first use."""
    if name == "cli":
        from ._app import cli  # noqa: PLC0415 - imports click and rich only when asked for

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
