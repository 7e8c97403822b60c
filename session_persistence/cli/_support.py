"""What every command shares: store selection, exit codes, output, progress bars.

Exit codes (also in ``docs/cli.md``):

== ===================================================================================
0  success
1  the command worked and found problems (``health`` unhealthy, ``check`` found damage,
   ``migrate`` counts differ)
2  usage: a bad option, argument, ``--store`` or ``SESSION_*`` variable, or session id; a
   record sealed with a key that ``SESSION_STORE_KEYS`` (or ``--keys-env``) does not hold
3  not found: no store at the location, no such session, backup or file
4  refused: damaged or invalid data (a hostile backup, a corrupt session, a bad import)
5  storage unavailable: I/O or permission error, a lock held too long
6  refused by the store's state: a migration target that is not empty, a session limit
70 internal error (a bug: please report it with the output of ``--debug``), such as a command
   that only looks asking a store it opened read-only to change (``StoreReadOnlyError``)
130 interrupted (Ctrl-C)
== ===================================================================================
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from ulid import ULID

from .._manager_stores import postgres_store
from ..config import SessionStoreConfig
from ..errors import (
    BackupError,
    ConfigurationError,
    InvalidInputError,
    MigrationError,
    SealingKeyError,
    SerializationError,
    SessionConflictError,
    SessionExistsError,
    SessionLimitError,
    SessionNotFoundError,
    SessionStoreError,
    StoreCorruptionError,
    StoreReadOnlyError,
)
from ..manager_config import SessionPersistenceConfig, redact_dsn
from ..models import ProgressCallback
from ..sealing import KEYS_ENV, Keyring
from ..stores import FileSystemSessionStore, InMemorySessionStore, SQLiteSessionStore
from ..stores.base import SessionStore

__all__ = [
    "DEFAULT_STORE",
    "Exit",
    "NotFoundError",
    "Output",
    "StoreSpec",
    "exit_code_for",
    "open_store",
    "parse_when",
    "print_error",
    "to_jsonable",
]

DEFAULT_STORE = "filesystem:./session_data"


class Exit(enum.IntEnum):
    """The exit codes, documented in ``docs/cli.md``."""

    OK = 0
    PROBLEMS = 1
    USAGE = 2
    NOT_FOUND = 3
    REFUSED = 4
    UNAVAILABLE = 5
    STATE = 6
    INTERNAL = 70
    INTERRUPTED = 130


class NotFoundError(Exception):
    """A store, session, backup or file the command needs does not exist."""


def exit_code_for(error: BaseException) -> Exit:
    """The exit code an error ends the command with."""
    if isinstance(error, StoreReadOnlyError):
        # Only the commands that change nothing open a store read-only, so a change it
        # refuses is the tool's bug, not the store's state or the storage.
        return Exit.INTERNAL
    if isinstance(error, NotFoundError | SessionNotFoundError | FileNotFoundError):
        return Exit.NOT_FOUND
    if isinstance(error, BackupError) and isinstance(error.__cause__, OSError):
        return Exit.UNAVAILABLE  # a backup or export file could not be written or read
    if isinstance(error, BackupError | StoreCorruptionError | SerializationError):
        return Exit.REFUSED
    if isinstance(
        error, ConfigurationError | InvalidInputError | SealingKeyError | click.UsageError
    ):
        return Exit.USAGE
    if isinstance(
        error, MigrationError | SessionLimitError | SessionConflictError | SessionExistsError
    ):
        return Exit.STATE
    if isinstance(error, SessionStoreError | OSError):
        return Exit.UNAVAILABLE
    return Exit.INTERNAL


# == choosing and opening a store ===============================================================


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """A store named on the command line: ``filesystem:DIR``, ``sqlite:FILE`` or PostgreSQL.

    PostgreSQL is a URI (``postgres://...``, ``postgresql://...``) or ``postgres:DSN`` (a
    libpq connection string); the store's tables are ``sp_*``. ``keyring`` holds the keys of
    a sealed store, read from ``SESSION_STORE_KEYS`` (or the variable ``--keys-env`` names).
    """

    kind: Literal["filesystem", "sqlite", "postgres"]
    path: Path
    config: SessionPersistenceConfig
    dsn: str = ""
    keyring: Keyring | None = None

    @classmethod
    def parse(
        cls,
        text: str | None,
        environ: Mapping[str, str] | None = None,
        *,
        keys_env: str | None = None,
    ) -> StoreSpec:
        """Read ``--store``, or ``SESSION_STORE_TYPE``/``SESSION_STORE_PATH``, or the default.

        The other ``SESSION_*`` variables (TTL, durability, ...) apply as they do to a manager.
        The keys come from ``keys_env`` (which must then be set), else from
        ``SESSION_STORE_KEYS`` if it is set; without either the store is opened without keys.

        Raises:
            click.UsageError: The text or a variable is not valid.
        """
        env = dict(os.environ if environ is None else environ)
        keyring = _keyring(env, keys_env)
        # Read here, not by the manager's config (which knows no keys variable).
        env.pop(KEYS_ENV, None)
        if keys_env is not None:
            env.pop(keys_env, None)
        if (
            text is None
            and "SESSION_STORE_TYPE" not in env
            and "SESSION_STORE_PATH" not in env
            and "SESSION_STORE_DSN" not in env
        ):
            text = DEFAULT_STORE
        if text is not None:
            kind, colon, path = text.partition(":")
            if kind in ("postgres", "postgresql") and path.startswith("//"):
                kind, path = "postgres", text  # a URI: the whole text is the DSN
            if not colon or not path or kind not in ("filesystem", "sqlite", "postgres"):
                raise click.UsageError(
                    f"--store {text!r}: expected filesystem:DIRECTORY, sqlite:FILE or "
                    "postgres://USER@HOST/DATABASE"
                )
            env.pop("SESSION_STORE_DSN", None)
            env["SESSION_STORE_TYPE"], env["SESSION_STORE_PATH"] = kind, path
        try:
            config = SessionPersistenceConfig.from_env(env)
        except ConfigurationError as error:
            raise click.UsageError(str(error)) from error
        if config.store_type == "filesystem":
            return cls("filesystem", Path(config.filesystem_base_dir), config, keyring=keyring)
        if config.store_type == "sqlite":
            return cls("sqlite", Path(config.sqlite_path), config, keyring=keyring)
        if config.store_type == "postgres":
            return cls("postgres", Path(), config, config.postgres_dsn or "", keyring)
        raise click.UsageError(
            f"SESSION_STORE_TYPE={config.store_type!r}: the command-line tool works on "
            "'filesystem', 'sqlite' and 'postgres' stores (a memory store lives inside one "
            "process)"
        )

    def __str__(self) -> str:
        if self.kind == "postgres":
            shown = redact_dsn(self.dsn)
            return shown if "://" in shown else f"postgres:{shown}"
        return f"{self.kind}:{self.path}"

    def same_as(self, other: StoreSpec) -> bool:
        """Whether both name the same store."""
        if self.kind != other.kind:
            return False
        if self.kind == "postgres":
            return self.dsn == other.dsn
        return self.path.resolve() == other.path.resolve()

    def exists(self) -> bool:
        """Whether a store of this kind is at the path (or in the database)."""
        if self.kind == "postgres":
            return postgres_tables_exist(self.dsn)
        if self.kind == "filesystem":
            return (self.path / "store.json").is_file()
        return self.path.is_file()

    def missing_reason(self) -> str:
        """Why :meth:`exists` is false, with what to do."""
        if self.kind == "filesystem" and self.path.is_dir() and any(self.path.iterdir()):
            return f"{self.path} is not a session-persistence store (it has no store.json)"
        if self.kind == "postgres":
            where = "session tables (sp_*) in that database"
        else:
            where = "directory" if self.kind == "filesystem" else "database file"
        return (
            f"no store at {self} (no such {where}); pass --store, set SESSION_STORE_PATH, "
            "or create one with 'session-persistence import'"
        )

    def build(self, *, watch: bool = False, read_only: bool = False) -> SessionStore:
        """A closed store for this spec, with nothing running in the background.

        ``read_only`` opens a filesystem store to inspect it: nothing on disk changes, and
        damage is reported, never moved. (SQLite and PostgreSQL need no such mode: their
        reads move nothing.)
        """
        config = self.config.effective_store_config()
        # An operator's look must not change the store: no cleanup, no timed backups.
        config = dataclasses.replace(config, auto_cleanup_enabled=False, backup_enabled=False)
        if self.keyring is not None:
            config = dataclasses.replace(config, encryption=self.keyring)
        return self._build(config, watch=watch, read_only=read_only)

    def _build(self, config: SessionStoreConfig, *, watch: bool, read_only: bool) -> SessionStore:
        durability = self.config.durability
        if self.kind == "filesystem":
            return FileSystemSessionStore(
                self.path,
                config,
                durability=durability,
                watch=watch,
                poll_interval=0.25,
                read_only=read_only,
            )
        if self.kind == "postgres":
            return postgres_store(self.dsn or None, config, durability=durability, watch=watch)
        return SQLiteSessionStore(self.path, config, durability=durability, watch=watch)


def _keyring(env: Mapping[str, str], keys_env: str | None) -> Keyring | None:
    """The keyring in ``keys_env`` (required) or ``SESSION_STORE_KEYS`` (if set), or ``None``.

    Raises:
        click.UsageError: The variable is malformed, or ``keys_env`` names an unset one.
    """
    name = keys_env or KEYS_ENV
    text = env.get(name, "").strip()
    if not text:
        if keys_env is not None:
            raise click.UsageError(
                f"--keys-env {keys_env}: the environment variable {keys_env} is not set; set "
                "it to '<key_id>:<base64 of 32 bytes>,...' (the first key is the active one)"
            )
        return None
    try:
        return Keyring.parse(text, source=name)
    except ConfigurationError as error:
        raise click.UsageError(str(error)) from error


def postgres_tables_exist(dsn: str, prefix: str = "sp_") -> bool:
    """Whether the database holds a PostgreSQL store's tables (``{prefix}schema``).

    A server that cannot be reached counts as "exists": opening the store then reports the
    real failure, rather than "no store".
    """
    try:
        import psycopg  # noqa: PLC0415 (the optional postgres extra)
    except ImportError:
        return True  # opening the store says what to install
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT to_regclass(%s)::text", (f"{prefix}schema",)).fetchone()
    except psycopg.Error:
        return True
    return row is not None and row[0] is not None


@contextlib.asynccontextmanager
async def open_store(
    spec: StoreSpec,
    *,
    create: bool = False,
    watch: bool = False,
    dry_run: bool = False,
    read_only: bool = False,
) -> AsyncIterator[SessionStore]:
    """Open the store; unless ``create``, it must exist already (a typo creates nothing).

    With ``dry_run``, a store that does not exist yet is stood in for by an empty in-memory
    store with the same options, so a dry run creates nothing; one that exists is opened
    read-only. ``read_only``: the command only looks, so the store is opened to inspect it
    (see :meth:`StoreSpec.build`); every command that changes nothing passes it.

    Raises:
        NotFoundError: There is no store there and ``create`` is false.
    """
    exists = spec.exists()
    if dry_run and not exists:
        config = dataclasses.replace(spec.build().config, backup_dir=None)
        async with InMemorySessionStore(config) as empty:
            yield empty
        return
    if not create and not exists:
        raise NotFoundError(spec.missing_reason())
    async with spec.build(watch=watch, read_only=read_only or dry_run) as store:
        yield store


# == values on the command line =================================================================

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, option: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC if no offset is given), or an age such as ``30m``, ``2h``, ``7d``.

    Raises:
        click.UsageError: Neither (the message names ``option``).
    """
    text = text.strip()
    unit = _UNITS.get(text[-1:].lower())
    if unit is not None and text[:-1].isdigit():
        return (now or datetime.now(UTC)) - timedelta(seconds=int(text[:-1]) * unit)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.UsageError(
            f"{option} {text!r} is not a time: use ISO 8601 (2026-11-21T09:00:00Z) or an age "
            "(45s, 30m, 2h, 7d, 1w)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, ULIDs, times and paths as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ULID | Path):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


# == output =====================================================================================


class Output:
    """Where a command writes: tables for people, JSON for scripts, errors on stderr."""

    def __init__(self, *, json: bool) -> None:
        self.json = json
        self.out = Console(highlight=False, soft_wrap=True)
        if not self.out.is_terminal and "COLUMNS" not in os.environ:
            self.out = Console(highlight=False, soft_wrap=True, width=120)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def emit(self, value: Any) -> None:
        """Print ``value`` as JSON (in ``--json`` mode)."""
        click.echo(orjson.dumps(to_jsonable(value), option=orjson.OPT_INDENT_2).decode())

    def line(self, value: Any) -> None:
        """Print ``value`` as one JSON line (for streams, e.g. ``watch --json``)."""
        click.echo(orjson.dumps(to_jsonable(value)).decode())

    def fail(self, message: str, code: Exit) -> NoReturn:
        """Print ``error: message`` on stderr and exit with ``code``."""
        print_error(message, self.err)
        raise SystemExit(int(code))

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[ProgressCallback]:
        """A progress bar with counts and rate, on stderr; a no-op callback for JSON/pipes."""
        if self.json or not self.err.is_terminal:
            yield _ignore
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.err, transient=False) as bar:
            task = bar.add_task(description, total=None, rate="")

            def update(done: int, total: int | None) -> None:
                elapsed = bar.tasks[task].elapsed or 0.0
                rate = f"{done / elapsed:,.0f}/s" if elapsed > 0 else ""
                bar.update(task, completed=done, total=total, rate=rate)

            yield update


def print_error(message: str, console: Console | None = None) -> None:
    """Print ``error: message`` as one line on stderr: every error of the tool looks like this."""
    console = console or Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)


def _ignore(done: int, total: int | None) -> None:
    """A progress callback that shows nothing."""


def describe_error(error: BaseException) -> str:
    """One line for an error: its message, without the class name people do not need."""
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())
