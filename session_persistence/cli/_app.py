"""The commands of ``session-persistence``. See ``docs/cli.md`` for each with its output.

Each command lives in the module of its area and registers itself on :data:`cli` when imported.
"""

from . import _backup, _inspect, _keys, _maintain, _stats, _transfer, _watch
from ._group import cli, main

__all__ = ["cli", "main"]

_COMMANDS = (
    _backup,
    _inspect,
    _keys,
    _maintain,
    _stats,
    _transfer,
    _watch,
)  # imported for their commands
