"""Sealing keys: ``keys status`` and ``keys rotate``.

Both take the store's keys from ``SESSION_STORE_KEYS`` (or the variable ``--keys-env``
names): ``<key_id>:<base64 of 32 bytes>,...``, the first key being the active one. ``status``
counts records by the key that sealed them without opening any, so it needs no key; ``rotate``
re-seals every record under the chosen key online, while other writers keep going.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click
from rich.markup import escape

from ..sealing import Keyring, KeyStatus, RotationReport
from ._group import cli, command
from ._support import Output, StoreSpec, open_store
from ._tables import Column, id_table

__all__ = ["keys_group", "keys_rotate", "keys_status"]


@cli.group("keys")
def keys_group() -> None:
    """Show which keys seal the store's records, and rotate to a new key."""


@keys_group.command("status")
@command
async def keys_status(*, spec: StoreSpec, output: Output) -> int:
    """Count the records at rest by the key that sealed them (no key is needed)."""
    async with open_store(spec, read_only=True) as store:
        status = await store.key_status()
    if output.json:
        output.emit({"store": str(spec), **_status_json(status)})
        return 0
    _print_status(output, status)
    return 0


@keys_group.command("rotate")
@click.option(
    "--key",
    "key_id",
    metavar="ID",
    help="The key to seal with (it must be in the keys). Default: the active (first) key.",
)
@click.option(
    "--accept-unsealed",
    is_flag=True,
    help="Read records in clear too, and seal them (a store written before sealing was on).",
)
@command
async def keys_rotate(
    key_id: str | None, accept_unsealed: bool, *, spec: StoreSpec, output: Output
) -> int:
    """Re-seal every record with one key, online; a rerun finishes an interrupted rotation.

    Writers in other processes keep going, with their own active key: give them the new key
    first (SESSION_STORE_KEYS), and keep the old keys until 'keys status' shows none left.
    """
    keyring = spec.keyring
    if keyring is None:
        raise click.UsageError(
            "keys rotate needs the store's keys: set SESSION_STORE_KEYS (or pass --keys-env "
            "NAME) to '<key_id>:<base64 of 32 bytes>,...', the new key first"
        )
    if accept_unsealed:
        keys = [key for key in map(keyring.key, keyring.ids) if key is not None]
        keyring = Keyring(*keys, active=keyring.active, accept_unsealed=True)
        spec = dataclasses.replace(spec, keyring=keyring)
    async with open_store(spec) as store:
        with output.progress("re-sealing") as progress:
            report = await store.rotate_key(key_id, progress=progress)
    if output.json:
        output.emit({"store": str(spec), **_report_json(report)})
        return 0
    output.out.print(
        f"re-sealed {report.records_resealed:,} record(s) under key {escape(report.key_id)}: "
        f"{report.sessions_examined:,} session(s) examined in {report.seconds:.1f}s"
    )
    _print_status(output, report.status)
    return 0


def _status_json(status: KeyStatus) -> dict[str, Any]:
    return {
        "active_key": status.active_key,
        "records": {key: count for key, count in status.records.items() if key is not None},
        "unsealed": status.records.get(None, 0),
        "keys_in_use": status.keys_in_use,
    }


def _report_json(report: RotationReport) -> dict[str, Any]:
    return {
        "key_id": report.key_id,
        "records_resealed": report.records_resealed,
        "sessions_examined": report.sessions_examined,
        "seconds": report.seconds,
        **_status_json(report.status),
    }


def _print_status(output: Output, status: KeyStatus) -> None:
    active = status.active_key
    rows = [
        [key, f"{count:,}", "yes" if key == active else ""]
        for key, count in sorted(status.records.items(), key=lambda item: str(item[0]))
        if key is not None
    ]
    rows.append(["(unsealed)", f"{status.records.get(None, 0):,}", ""])
    columns = [Column("KEY"), Column("RECORDS", "right"), Column("ACTIVE")]
    output.out.print(id_table(None, columns, rows, output.out.width))
    if active is None:
        output.out.print("active key: none (no keys given: SESSION_STORE_KEYS is not set)")
    else:
        output.out.print(f"active key: {escape(active)}")
