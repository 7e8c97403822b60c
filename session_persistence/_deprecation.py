"""Old spellings kept for a while: they work, and warn with ``DeprecationWarning``.

Issue 17 gave the API one vocabulary (``session_id`` everywhere, ``auto_persist`` for
background persistence). The names it replaced are listed in ``CHANGELOG.md`` and go through
:func:`warn_deprecated`, so existing code keeps running and says what to change.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["DeprecatedKeys", "warn_deprecated"]


def warn_deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (pointing at the caller's line)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in a future release; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


class DeprecatedKeys(dict[str, Any]):
    """A dict some of whose keys are old spellings: reading one of those warns.

    Iterating, copying and comparing do not warn; only looking a deprecated key up does.
    """

    def __init__(self, data: dict[str, Any], renamed: dict[str, str]) -> None:
        super().__init__(data)
        self._renamed = renamed

    def __getitem__(self, key: str) -> Any:
        self._check(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._check(key)
        return super().get(key, default)

    def _check(self, key: str) -> None:
        new = self._renamed.get(key)
        if new is not None:
            warn_deprecated(f"the key {key!r}", repr(new), stacklevel=4)
