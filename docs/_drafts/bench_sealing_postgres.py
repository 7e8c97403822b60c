"""Sealed vs plain ``update_session`` of ~1 KB metadata on the PostgreSQL store (issue 23).

A draft for benchmarks/_postgres.py (the lead merges): run from the repository root with
``.venv/bin/python docs/_drafts/bench_sealing_postgres.py [rounds] [per_round]``. One throwaway
server with ``fsync = on`` (as benchmarks/_postgres.py), ``durability="full"``; each side
updates its own session in its own table set; the sides alternate in rounds in this one
process (``_measure.alternate``), so drift of the machine hits every side alike.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]  # (tests/_postgres first)

from _measure import alternate, timed  # noqa: E402
from _postgres import throwaway_server  # noqa: E402
from _targets import payload  # noqa: E402

from session_persistence import SessionStoreConfig  # noqa: E402
from session_persistence.sealing import Compression, Key, Keyring  # noqa: E402
from session_persistence.stores.postgres import PostgresSessionStore  # noqa: E402
from session_persistence.testing import session_object  # noqa: E402

KEYS = Keyring(Key("k1", bytes(range(32))))
SIDES = {
    "plain": SessionStoreConfig(),
    "sealed": SessionStoreConfig(encryption=KEYS),
    "sealed+zlib": SessionStoreConfig(encryption=KEYS, compression=Compression("zlib")),
}


async def main(rounds: int, per_round: int) -> None:
    """Time every side's updates in ``rounds`` alternating rounds of ``per_round``."""
    with throwaway_server(fsync=True) as server:
        dsn = server.create_database("sp_seal_bench")
        stores = {
            name: PostgresSessionStore(dsn, config, table_prefix=f"b{i}_")
            for i, (name, config) in enumerate(SIDES.items())
        }
        chunks = {}
        for name, store in stores.items():
            await store.initialize()
            sid = await store.create_session(session_object("p"), metadata=payload(1024, 0))
            chunks[name] = timed(
                lambda n, s=store, i=sid.session_id: s.update_session(
                    i, {"metadata": payload(1024, n)}
                ),
                per_round,
            )
        for store in stores.values():  # (warm up: pools, prepared statements)
            for n in range(20):
                await store.update_session(
                    (await store.list_session_headers())[0].session_id,
                    {"metadata": payload(1024, -n)},
                )
        pooled = await alternate(chunks, rounds)
        for store in stores.values():
            await store.shutdown()
    base = statistics.median(pooled["plain"].samples)
    for name, side in pooled.items():
        median = statistics.median(side.samples)
        rate = len(side.samples) / side.elapsed
        print(
            f"{name:12s} median {median * 1e6:8.1f} us  {rate:7.0f} updates/s  "
            f"median ratio to plain {median / base:.3f}  n={len(side.samples)}"
        )


if __name__ == "__main__":
    asyncio.run(main(*(int(a) for a in sys.argv[1:3])) if len(sys.argv) > 2 else main(10, 200))
