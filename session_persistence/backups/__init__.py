"""Backups, restore, export and import, shared by every store.

:class:`~session_persistence.stores.base.SessionStore` exposes them as ``create_backup``,
``list_backups``, ``get_backup``, ``delete_backup``, ``verify_backup``,
``restore_from_backup``, ``export_sessions`` and ``import_sessions``; this package holds the
code behind them (:mod:`.engine`), the file formats (:mod:`._format`) and where backups are kept
(:mod:`._vault`).
"""

from .engine import Backups, PathOrStream

__all__ = ["Backups", "PathOrStream"]
