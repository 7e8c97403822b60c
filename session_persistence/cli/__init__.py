"""The ``session-persistence`` command-line tool (install the ``cli`` extra).

``session-persistence --help`` lists the commands; ``docs/cli.md`` shows each with its output
and the exit codes.
"""

from ._app import cli, main

__all__ = ["cli", "main"]
