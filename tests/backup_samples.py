"""Backup files built by hand for tests: valid documents, and well-sealed hostile backups."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from session_persistence import PersistedSession
from session_persistence.backups._format import encode_backup
from session_persistence.documents import session_to_document
from session_persistence.serialization import default_codec, dump_json


def document(session_id: str, **changes: Any) -> bytes:
    """A valid session document with ``changes`` applied to its JSON."""
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    session = PersistedSession(
        session_id=session_id,
        processor_id="p",
        activity_id="a",
        request_id="r",
        interactions=[],
        created_at=moment,
        updated_at=moment,
        expires_at=None,
        last_accessed_at=moment,
        metadata={},
        tags=[],
        version=1,
    )
    raw = session_to_document(session, default_codec)
    for key, value in changes.items():
        if value is None:
            del raw[key]
        else:
            raw[key] = value
    return dump_json(raw)


def sealed(documents: list[bytes], **fields: Any) -> bytes:
    """A backup file with a valid checksum around ``documents`` (a hostile one can have it)."""
    header = {
        "backup_id": "01JD0000000000000000000000",
        "created_at": "2030-01-01T00:00:00+00:00",
        "store_type": "memory",
        "include_expired": False,
        "filter": None,
        "metadata": {},
        **fields,
    }
    return encode_backup(header, documents, compress=False)
