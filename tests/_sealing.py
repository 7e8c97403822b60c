"""Shared pieces of the sealing tests: fixed keys, sealed configurations, a plaintext scan."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

from session_persistence import SessionStoreConfig
from session_persistence.sealing import Compression, Key, Keyring

#: Two fixed keys (tests must be repeatable); K1 is the active key of KEYS.
K1 = Key("k1", bytes(range(32)))
K2 = Key("k2", bytes(range(32, 64)))
KEYS = Keyring(K1, K2)
#: KEYS that also read records in clear: for opening a store written before sealing, to
#: rotate_key() it (a store that seals everything refuses records in clear).
MIGRATING = Keyring(K1, K2, accept_unsealed=True)

#: Compress nearly every record, so the compressed path runs on small test sessions too.
COMPRESSION = Compression("zlib", threshold=64)

#: The three variants the conformance suite runs under, on every store.
VARIANTS: dict[str, dict[str, object]] = {
    "sealed": {"encryption": KEYS},
    "compressed": {"compression": COMPRESSION},
    "sealed_compressed": {"encryption": KEYS, "compression": COMPRESSION},
}


def variant(config: SessionStoreConfig, name: str) -> SessionStoreConfig:
    """Return ``config`` with the sealing variant ``name`` applied."""
    return dataclasses.replace(config, **VARIANTS[name])  # type: ignore[arg-type]


def sealed(config: SessionStoreConfig | None = None, **changes: object) -> SessionStoreConfig:
    """Return ``config`` (default: a fresh one) sealed with :data:`KEYS`."""
    base = config or SessionStoreConfig()
    return dataclasses.replace(base, encryption=KEYS, **changes)  # type: ignore[arg-type]


def files_under(*roots: Path) -> Iterable[Path]:
    """Every regular file under ``roots`` (recursively), the roots themselves if files."""
    for root in roots:
        if root.is_file():
            yield root
            continue
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                if path.is_file():
                    yield path


def hits(marker: bytes, *roots: Path) -> list[Path]:
    """Files under ``roots`` whose bytes contain ``marker``."""
    return [path for path in files_under(*roots) if marker in path.read_bytes()]
