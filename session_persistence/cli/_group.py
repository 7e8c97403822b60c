"""The ``session-persistence`` group, what every command shares, and the entry point."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
import traceback
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

import click

from .._version import __version__
from ..errors import SealingKeyError, UnsealedRecordError
from ..sealing import KEYS_ENV
from ._support import (
    DEFAULT_STORE,
    Exit,
    Output,
    StoreSpec,
    describe_error,
    exit_code_for,
    print_error,
)

__all__ = ["KEYS_HELP", "STORE_HELP", "cli", "command", "main"]


STORE_HELP = (
    "The store: filesystem:DIRECTORY, sqlite:FILE or postgres://USER@HOST/DATABASE. Default: "
    f"SESSION_STORE_TYPE and SESSION_STORE_PATH (or SESSION_STORE_DSN), else {DEFAULT_STORE}."
)


KEYS_HELP = (
    "The environment variable holding the store's keys ('<key_id>:<base64>,...', the first "
    "active). Default: SESSION_STORE_KEYS, if set."
)


class _Context:
    """What the group's options give every command."""

    def __init__(self, store: str | None, debug: bool, keys_env: str | None = None) -> None:
        self.store = store
        self.debug = debug
        self.keys_env = keys_env


def command(body: Callable[..., Coroutine[Any, Any, int | None]]) -> Callable[..., None]:
    """Give a command ``--store``, ``--keys-env`` and ``--json``, run it, and map errors."""

    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    @click.option("--keys-env", "keys_env", metavar="NAME", help=KEYS_HELP)
    @click.option("--store", "store_text", metavar="TYPE:PATH", help=STORE_HELP)
    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> None:
        context = click.get_current_context().find_object(_Context) or _Context(None, False)
        as_json = bool(kwargs.pop("as_json"))
        store_text = kwargs.pop("store_text")
        keys_env = kwargs.pop("keys_env") or context.keys_env
        output = Output(json=as_json)
        try:
            spec = StoreSpec.parse(
                store_text if store_text is not None else context.store, keys_env=keys_env
            )
            code = asyncio.run(body(*args, spec=spec, output=output, **kwargs))
        except KeyboardInterrupt:
            output.fail("interrupted", Exit.INTERRUPTED)
        except click.ClickException as error:  # a bad --store, variable or value: one line
            output.fail(error.format_message(), Exit.USAGE)
        except Exception as error:
            if context.debug:
                traceback.print_exc()
            code = exit_code_for(error)
            message = describe_error(error)
            if isinstance(error, UnsealedRecordError):
                message += (
                    "; with the command line: session-persistence keys rotate --accept-unsealed"
                )
            elif isinstance(error, SealingKeyError):
                message += f" (the command line reads the keys from {KEYS_ENV}, or --keys-env NAME)"
            if code == Exit.INTERNAL:
                message = (
                    f"internal error: {type(error).__name__}: {message} (run with --debug for "
                    "the traceback, and please report it)"
                )
            output.fail(message, code)
        sys.exit(int(code or 0))

    return run


class _Tool(click.Group):
    """The group: usage errors are reported as every other error is, in one line."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_usage_errors():  # a subcommand's options and arguments are parsed here
            return super().invoke(ctx)


class _UsageError(click.UsageError):
    """A usage error shown as ``error: ...`` on one line, with where to find help."""

    def show(self, file: Any = None) -> None:
        print_error(self.format_message())


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """Turn click's usage errors (three lines, "Usage: ...") into one ``error:`` line."""
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise  # no command at all: the help is the answer
    except _UsageError:
        raise
    except click.UsageError as error:
        message = error.format_message().strip()
        message = message[:1].lower() + message[1:]
        if error.ctx is not None:
            message = f"{message.rstrip('.')} (see '{error.ctx.command_path} --help')"
        raise _UsageError(message, error.ctx) from error


@click.group(
    cls=_Tool,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="session-persistence")
@click.option("--store", "store_text", metavar="TYPE:PATH", help=STORE_HELP)
@click.option("--keys-env", "keys_env", metavar="NAME", help=KEYS_HELP)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, store_text: str | None, keys_env: str | None, debug: bool) -> None:
    """Inspect, check, clean, back up, restore, export, import, migrate and watch a store.

    Every command takes --store (or reads SESSION_STORE_TYPE/SESSION_STORE_PATH) and --json.
    A sealed store's keys come from SESSION_STORE_KEYS (or the variable --keys-env names).
    Exit codes: 0 ok, 1 problems found, 2 usage (or a missing key), 3 not found, 4 damaged
    or refused data, 5 storage unavailable, 6 refused by the store's state, 70 internal error.
    """
    ctx.obj = _Context(store_text, debug, keys_env)
    _quiet_logs(debug)


def _quiet_logs(debug: bool) -> None:
    """The library's log lines go to stderr with --debug; otherwise the output says it all."""
    package = logging.getLogger("session_persistence")
    package.handlers = [h for h in package.handlers if h.get_name() != "session-persistence-cli"]
    handler: logging.Handler = logging.StreamHandler() if debug else logging.NullHandler()
    handler.set_name("session-persistence-cli")
    if debug:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package.setLevel(logging.INFO)
    package.addHandler(handler)
    package.propagate = not debug


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (the ``session-persistence`` console script)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="session-persistence")
