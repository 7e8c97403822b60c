"""Session ids: validation wherever an id enters, and monotonic ULID generation."""

from __future__ import annotations

import os
import re
import threading
import time

from ulid import ULID

from .errors import InvalidSessionIdError

__all__ = ["is_valid_session_id", "new_session_id", "validate_session_id"]

# A ULID is 26 characters of Crockford base32, a subset of this pattern, so one check covers
# both. The pattern admits no '/', '.', NUL or other character that could name another path.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

_RANDOM_MASK = (1 << 80) - 1
_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def is_valid_session_id(value: object) -> bool:
    """Return whether ``value`` is an acceptable session id (a str matching the pattern)."""
    return type(value) is str and _SESSION_ID.fullmatch(value) is not None


def validate_session_id(value: object) -> str:
    """Return ``value`` if it is a valid session id.

    Raises:
        InvalidSessionIdError: Not a ``str`` matching ``[A-Za-z0-9_-]{1,128}`` (ULIDs do).
    """
    if type(value) is not str or _SESSION_ID.fullmatch(value) is None:
        raise InvalidSessionIdError(value)
    return value


def new_session_id() -> str:
    """Return a new ULID string, strictly greater than every one this process made before.

    Within one millisecond the random part is incremented (the ULID spec's monotonic mode), so
    ids sort in creation order even when many are made at once.
    """
    global _last_ms, _last_random  # noqa: PLW0603 - process-wide monotonic state, under _lock
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            # Leave headroom so increments within the millisecond cannot overflow.
            _last_random = int.from_bytes(os.urandom(10), "big") >> 1
        else:
            _last_random = (_last_random + 1) & _RANDOM_MASK
            if _last_random == 0:  # pragma: no cover - needs 2**79 ids in one millisecond
                _last_ms += 1
        return str(ULID.from_int((_last_ms << 80) | _last_random))
