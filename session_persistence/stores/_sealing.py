"""The sealing part of the store contract: ``rotate_key`` and ``key_status``.

Kept apart from :mod:`.base` for size; mixed into :class:`SessionStore`. The envelope itself
(:mod:`session_persistence._envelope`) is applied by each backend where it writes a record;
this part switches the active key and drives the backend's two hooks:

* ``_reseal(key_id, progress)``: re-seal, online, every record not sealed with ``key_id``
  (unsealed records included), without changing any session's content, version or
  timestamps; return how many records it rewrote. It must be safe to run again after a crash
  at any point: every record is readable under the keyring at every moment, so a rerun simply
  finds fewer records to rewrite.
* ``_key_census()``: count the records at rest by the key that sealed them (``None``: not
  sealed).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

from ..errors import ConfigurationError
from ..models import ProgressCallback
from ..sealing import KeyStatus, RotationReport

if TYPE_CHECKING:
    from .base import SessionStore

__all__ = ["SealingMethods"]


class SealingMethods:
    """``rotate_key`` and ``key_status``: mixed into :class:`SessionStore`."""

    async def rotate_key(
        self, key_id: str | None = None, *, progress: ProgressCallback | None = None
    ) -> RotationReport:
        """Make ``key_id`` the active key and re-seal every record with it, while writes go on.

        New writes are sealed with ``key_id`` from the moment this is called. Every record
        sealed with another key (or not sealed at all, in a store that turned sealing on
        later) is then rewritten under it, session by session, without changing any session's
        content, version or timestamps. If the process dies part-way, every record is still
        readable with the keyring; call ``rotate_key`` again and it re-seals what is left.
        Once it returns, :meth:`key_status` counts records of ``key_id`` only (unless another
        process still writes with an older active key), and the older keys can be dropped
        from the keyring. Backups are not rewritten: keep a key while a backup needs it.

        Args:
            key_id: The key to seal with; it must be in the store's keyring. ``None``: the
                keyring's active key (re-seals everything under it).
            progress: Called as ``progress(done, total)`` with sessions examined so far.

        Returns:
            What was done: records rewritten, sessions examined, the census after.

        Raises:
            ConfigurationError: The store has no keyring, or ``key_id`` is not in it.
        """
        store = cast("SessionStore", self)
        store._writable()
        keyring = store._envelope.keyring
        if keyring is None:
            raise ConfigurationError(
                "encryption", "rotate_key needs a store opened with encryption=Keyring(...)"
            )
        target = keyring.active if key_id is None else key_id
        if keyring.key(target) is None:
            raise ConfigurationError(
                "encryption",
                f"key {target!r} is not in the keyring {list(keyring.ids)}: add it first",
            )
        store._use_active_key(target)
        started = time.perf_counter()
        examined = 0

        def counted(done: int, total: int | None) -> None:
            nonlocal examined
            examined = done
            if progress is not None:
                progress(done, total)

        resealed = await store._reseal(target, counted)
        status = await self.key_status()
        return RotationReport(
            key_id=target,
            sessions_examined=examined,
            records_resealed=resealed,
            seconds=time.perf_counter() - started,
            status=status,
        )

    async def key_status(self) -> KeyStatus:
        """Count the records at rest by the key that sealed them (``None``: unsealed).

        Covers what the store itself keeps (session records, journal, index), not backups.
        """
        store = cast("SessionStore", self)
        store._ensure_open()
        census = await store._key_census()
        return KeyStatus(active_key=store._envelope.active_key, records=dict(census))
