"""What sealing and compression cost (issue 23), on the filesystem store.

* ``update 1 KB (sealing)``: a durable 1 KB ``update_session``, plain vs sealed (AES-256-GCM)
  vs sealed and zlib-compressed, in alternating rounds;
* ``read history of N (compression)``: ``get_session`` of a session holding N exchanges (the
  largest of ``Sizes.history_at``: 10,000 in the full run; each exchange a question and an
  answer of about 60 words drawn from a 5,000-word vocabulary with a Zipf-like frequency, so
  the text compresses about as prose does, not as the repeated filler of the other
  workloads) through a new store instance each
  time (so neither the read cache nor the store's memory holds it), its base file's pages
  dropped from the page cache first (``posix_fadvise(DONTNEED)``) so the file is read from the
  disk; plain vs zlib vs zstd vs sealed+zlib. Each result's ``extra`` holds the session's
  bytes on disk (``bytes_on_disk``: its base file after a checkpoint).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from _measure import Result, alternate, summarize, timed
from _sizes import Sizes, opened, per_round
from _targets import Ours, payload

from session_persistence import (
    FileSystemSessionStore,
    Interaction,
    InteractionMessage,
    SessionStore,
    SessionStoreConfig,
)
from session_persistence.sealing import Compression, Key, Keyring
from session_persistence.testing import session_object

__all__ = ["SEALING", "sealing"]

KEYS = Keyring(Key("bench", bytes(range(32))))

#: The sides, by name: their store configuration (durability "full" for all).
SIDES: dict[str, SessionStoreConfig] = {
    "filesystem/full": SessionStoreConfig(),
    "filesystem/full sealed": SessionStoreConfig(encryption=KEYS),
    "filesystem/full sealed+zlib": SessionStoreConfig(encryption=KEYS, compression="zlib"),
    "filesystem/full zlib": SessionStoreConfig(compression="zlib"),
    "filesystem/full zstd": SessionStoreConfig(compression=Compression("zstd")),
}
UPDATE_SIDES = ("filesystem/full", "filesystem/full sealed", "filesystem/full sealed+zlib")
READ_SIDES = (
    "filesystem/full",
    "filesystem/full zlib",
    "filesystem/full zstd",
    "filesystem/full sealed+zlib",
)


class _Configured(Ours):
    """A filesystem store with one of :data:`SIDES`' configurations."""

    def _build(self) -> SessionStore:
        return FileSystemSessionStore(self.root / "fs", SIDES[self.name], watch=False)


async def sealing(root: Path, sizes: Sizes) -> list[Result]:
    """The two workloads above."""
    return [*await _updates(root, sizes), *await _history(root, sizes)]


async def _updates(root: Path, sizes: Sizes) -> list[Result]:
    targets = {
        name: _Configured(root / f"seal-update-{i}", name) for i, name in enumerate(UPDATE_SIDES)
    }
    async with opened(targets.values()):
        keys = {name: await t.create(payload(1024, 0)) for name, t in targets.items()}
        pooled = await alternate(
            {
                name: timed(
                    lambda i, t=t, k=keys[name]: t.update(k, payload(1024, i)),
                    per_round(sizes.ops, sizes.rounds),
                )
                for name, t in targets.items()
            },
            sizes.rounds,
        )
    return [summarize("update 1 KB (sealing)", name, p.samples) for name, p in pooled.items()]


def _prose_exchanges(count: int) -> list[Interaction]:
    """``count`` exchanges of varied text (see the module's docstring), the same every run."""
    rng = random.Random(23)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocabulary = [
        "".join(rng.choice(letters[: 8 + n % 18]) for _ in range(2 + n % 9)) for n in range(5000)
    ]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]

    def text() -> str:
        return " ".join(rng.choices(vocabulary, weights, k=30))

    return [
        Interaction(
            request=InteractionMessage(
                event={"role": "user", "content": f"question {n}: {text()}"},
                sender="user",
                recipients={"assistant"},
            ),
            responses=[
                InteractionMessage(
                    event={"role": "assistant", "content": f"answer {n}: {text()}"},
                    sender="assistant",
                )
            ],
        )
        for n in range(count)
    ]


def _drop_pages(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


async def _history(root: Path, sizes: Sizes) -> list[Result]:
    held = max(sizes.history_at)
    where = {name: root / f"seal-history-{i}" for i, name in enumerate(READ_SIDES)}
    ids: dict[str, str] = {}
    on_disk: dict[str, int] = {}
    template = session_object()
    template.interactions.extend(_prose_exchanges(held))
    for name in READ_SIDES:
        async with FileSystemSessionStore(where[name] / "fs", SIDES[name], watch=False) as store:
            created = await store.create_session(template, expires_at=None)
            ids[name] = created.session_id
        on_disk[name] = (
            (where[name] / "fs" / "sessions" / f"{created.session_id}.json").stat().st_size
        )

    def side(name: str) -> Any:
        async def chunk(_round: int) -> list[float]:
            store = FileSystemSessionStore(where[name] / "fs", SIDES[name], watch=False)
            await store.initialize()
            try:
                _drop_pages(where[name] / "fs" / "sessions" / f"{ids[name]}.json")
                start = time.perf_counter()
                session = await store.get_session(ids[name])
                elapsed = time.perf_counter() - start
                assert session is not None
                assert len(session.interactions) == held
                return [elapsed]
            finally:
                await store.shutdown()

        return chunk

    pooled = await alternate({name: side(name) for name in READ_SIDES}, sizes.cold_reads)
    return [
        summarize(
            f"read history of {held:,} (compression)",
            name,
            p.samples,
            bytes_on_disk=on_disk[name],
        )
        for name, p in pooled.items()
    ]


SEALING = {"sealing": sealing}
