"""A throwaway PostgreSQL server for the tests and benchmarks: ``initdb`` + ``pg_ctl``, no Docker.

:class:`PostgresServer` makes a cluster in a new temp directory, starts it on a Unix socket in
that directory (no TCP port, so parallel runs never collide) and removes it all on
:meth:`~PostgresServer.stop`. ``initdb`` refuses to run as root, so as root the cluster is
made and run as an unprivileged user (``postgres`` if it exists, else ``nobody``) through
``runuser`` or ``setpriv``; the directory is handed to that user.

The binaries are looked up on ``PATH`` and in ``/usr/lib/postgresql/<version>/bin`` (Debian's
layout; the newest version wins). ``make test`` installs Debian's ``postgresql`` package when
neither has them. ``SP_POSTGRES_BIN`` names the directory to use instead. ``SP_POSTGRES_DSN``
points the tests at an existing server instead (one the tests may create databases in).

Used by ``tests/conftest.py`` (the ``postgres_server`` fixture) and ``benchmarks/_postgres.py``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "PostgresServer",
    "PostgresUnavailable",
    "create_database",
    "find_binaries",
    "throwaway_server",
]

_BINARIES = ("initdb", "pg_ctl")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL binaries are not on this machine (the message says what was searched)."""


def find_binaries() -> Path:
    """Return the directory holding ``initdb`` and ``pg_ctl``.

    Raises:
        PostgresUnavailable: Neither ``PATH`` nor ``/usr/lib/postgresql/*/bin`` has them.
    """
    chosen = os.environ.get("SP_POSTGRES_BIN")
    if chosen:  # (only there: the tests of the skip itself point it at nothing)
        if all((Path(chosen) / name).exists() for name in _BINARIES):
            return Path(chosen)
        raise PostgresUnavailable(f"SP_POSTGRES_BIN={chosen} has no initdb and pg_ctl")
    on_path = [shutil.which(name) for name in _BINARIES]
    if all(on_path):
        # (a symlink such as /usr/local/bin/initdb: its real directory has the rest too)
        return Path(str(on_path[0])).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: _version_key(p.parent.name),
        reverse=True,
    )
    for folder in candidates:
        if all((folder / name).exists() for name in _BINARIES):
            return folder
    raise PostgresUnavailable(
        "initdb and pg_ctl are neither on PATH nor in /usr/lib/postgresql/*/bin; install "
        "PostgreSQL (`apt-get install postgresql`, which `make test` does as root), or set "
        "SP_POSTGRES_DSN to a server the tests may use"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _run_as() -> tuple[list[str], int | None, int | None]:
    """The command prefix to run the server's binaries, and the uid/gid to hand files to."""
    if os.geteuid() != 0:
        return [], None, None
    for user in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        if shutil.which("runuser"):
            return ["runuser", "-u", user, "--"], entry.pw_uid, entry.pw_gid
        if shutil.which("setpriv"):
            return (
                [
                    "setpriv",
                    f"--reuid={entry.pw_uid}",
                    f"--regid={entry.pw_gid}",
                    "--clear-groups",
                    "--",
                ],
                entry.pw_uid,
                entry.pw_gid,
            )
    raise PostgresUnavailable(
        "running as root, and neither a 'postgres' nor a 'nobody' user with runuser or "
        "setpriv to run initdb as (it refuses root)"
    )


class PostgresServer:
    """One throwaway cluster: :meth:`start`, :meth:`dsn`, :meth:`restart`, :meth:`stop`.

    Args:
        fsync: Whether the server fsyncs (off makes tests faster; benchmarks keep it on).
        settings: More ``postgresql.conf`` settings, ``name=value``.
    """

    def __init__(self, *, fsync: bool = False, settings: dict[str, str] | None = None) -> None:
        self.bin = find_binaries()
        self._prefix, self._uid, self._gid = _run_as()
        # As root the server runs as another user, who must reach the directory: /tmp, not
        # a TMPDIR that may sit inside root's own home.
        where = "/tmp" if self._uid is not None and Path("/tmp").is_dir() else None
        self.root = Path(tempfile.mkdtemp(prefix="sp-pg-", dir=where))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.log = self.root / "server.log"
        self.user = "postgres"
        self._settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "300",
            "fsync": "on" if fsync else "off",
            "full_page_writes": "on" if fsync else "off",
            "log_min_messages": "warning",
            **(settings or {}),
        }
        self.running = False

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [*self._prefix, str(self.bin / args[0]), *args[1:]]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if check and result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}\n{log}"
            )
        return result

    def start(self) -> PostgresServer:
        """Make the cluster (``initdb``) and start it; return self."""
        if self._uid is not None and self._gid is not None:
            os.chown(self.root, self._uid, self._gid)
        self.root.chmod(0o700)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            for name, value in self._settings.items():
                conf.write(f"{name} = {value}\n")
        self._pg_ctl("start")
        self.running = True
        return self

    def _pg_ctl(self, action: str, *more: str) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", action, *more
        )

    def restart(self, mode: str = "fast", *, down_for: float = 0.0) -> None:
        """Restart the server, staying down ``down_for`` seconds in between.

        ``fast`` disconnects everyone, then stops cleanly; ``immediate`` stops as a crash.
        """
        if down_for <= 0:
            self._pg_ctl("restart", "-m", mode)
            return
        self._pg_ctl("stop", "-m", mode)
        time.sleep(down_for)
        self._pg_ctl("start")

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop", check=False)
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for a database of this server."""
        return f"host={self.socket_dir} user={self.user} dbname={dbname}"

    def create_database(self, name: str) -> str:
        """Create (or re-create) a database; return its connection string."""
        return create_database(self.dsn(), name)


def create_database(admin_dsn: str, name: str) -> str:
    """Create (or re-create, empty) the database ``name``; return its connection string."""
    # (imported here: conftest imports this module in venvs without the postgres extra)
    import psycopg  # noqa: PLC0415
    from psycopg.conninfo import make_conninfo  # noqa: PLC0415

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_conninfo(admin_dsn, dbname=name)


@contextlib.contextmanager
def throwaway_server(
    *, fsync: bool = False, settings: dict[str, str] | None = None
) -> Iterator[PostgresServer]:
    """Start a :class:`PostgresServer`, yield it, and stop it (removing its files)."""
    server = PostgresServer(fsync=fsync, settings=settings)
    try:
        yield server.start()
    finally:
        server.stop()
