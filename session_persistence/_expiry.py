"""Sliding expiry: how a write moves the expiry of a session that lives on the default TTL.

A session whose ``expires_at`` comes from ``default_session_ttl`` *slides*: every write sets
``expires_at`` to the write's time plus the TTL, so a session in use never expires. An explicit
``expires_at`` (at creation, in an update, or by ``set_session_expiration``) stays fixed until
changed.

Which of the two a stored session is needs no field of its own, so it holds on every backend
and in every backup and export already written: a write sets ``updated_at`` to the moment it
computes ``expires_at`` from, so a session lives on the default TTL exactly when

    expires_at - updated_at == default_session_ttl

(to the microsecond, as every store keeps timestamps). Two consequences, documented for
users: an explicit expiry exactly one TTL after the write that sets it is the default and
slides; and after ``default_session_ttl`` changes, a session last written under the old TTL no
longer slides: it expires at its current ``expires_at`` (the manager's ``recreate_expired``
writes it back if it is still in use; ``refresh_session`` puts it on the new TTL).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .models import PersistedSession, SessionHeader

__all__ = ["slid_expiry"]


def slid_expiry(
    current: PersistedSession | SessionHeader,
    now: datetime,
    ttl: timedelta | None,
    *,
    sliding: bool,
) -> datetime | None:
    """Return the expiry a write at ``now`` gives ``current`` (unchanged if it does not slide).

    Args:
        current: The session (or header) before the write.
        now: When the write happens (it becomes ``updated_at``).
        ttl: The store's ``default_session_ttl`` (``None``: nothing slides).
        sliding: Whether the store's ``expiry_mode`` is ``"sliding"``.
    """
    expires = current.expires_at
    if not sliding or ttl is None or expires is None or expires - current.updated_at != ttl:
        return expires
    if expires <= now:
        return expires  # expired already: a write never revives a session (see Transaction)
    # now + TTL even if the clock stepped back: the rule above must keep holding.
    return now + ttl
