"""Two instances on one filesystem store, random writes, every read checked against a model.

Writes (appends, rewrites, metadata updates, deletes and re-creates under one id, checkpoints
forced by a tiny `checkpoint_bytes`) come from either instance; after each, both must read
exactly the model, whatever the caller did to what an earlier read returned (the read cache
follows appends, and reads lend what it keeps). Set SP_READ_FUZZ_SEEDS for more seeds than the
50 of the main run.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from session_persistence import FileSystemSessionStore
from session_persistence.testing import interaction, session_object


def _contents(session: object) -> list[str]:
    return [i.request.event["content"] for i in session.interactions]  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", range(int(os.environ.get("SP_READ_FUZZ_SEEDS", "50"))))
async def test_reads_follow_every_write(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "s"
    async with (
        FileSystemSessionStore(root, watch=False, checkpoint_bytes=4096) as a,
        FileSystemSessionStore(root, watch=False, checkpoint_bytes=4096) as b,
    ):
        stores = [a, b]
        sid = "sess1"
        model: list[str] | None = None
        for step in range(80):
            op = rng.choice(
                ["append", "append", "append", "put", "delete", "create", "opt", "read", "meta"]
            )
            w = rng.choice(stores)
            counter = step + 1
            if op == "create" and model is None:
                obj = session_object()
                await w.create_session(obj, session_id=sid)
                model = []
            elif op == "append" and model is not None:
                n = rng.randint(1, 3)
                items = [interaction(f"t{counter}.{k}") for k in range(n)]
                await w.append_interactions(sid, *items)
                model += [f"t{counter}.{k}" for k in range(n)]
            elif op == "put" and model is not None:
                keep = rng.randint(0, len(model))
                cur = await w.get_session(sid)
                assert cur is not None
                new = [*list(cur.interactions)[:keep], interaction(f"p{counter}")]
                await w.update_session(sid, {"interactions": new})
                model = [*model[:keep], f"p{counter}"]
            elif op == "delete" and model is not None:
                await w.delete_session(sid)
                model = None
            elif op == "meta" and model is not None:
                await w.update_session(sid, {"metadata": {"n": counter}})
            elif op == "opt":
                await w.optimize()
            for r in stores:
                got = await r.get_session(sid)
                if model is None:
                    assert got is None, (seed, step)
                else:
                    assert got is not None, (seed, step)
                    assert _contents(got) == model, (seed, step, op)
                    if rng.random() < 0.3 and got.interactions:
                        got.interactions[-1].request.event["content"] = "mutated"
                        got.interactions.pop(0)
