"""A PostgreSQL server of the test's own, on a free port, that a test may stop and start.

The machine's shared server is never stopped: an outage test makes its own with `initdb`
and `pg_ctl` (run as the `postgres` user when the tests run as root, which initdb refuses).
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when they are not installed."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


class PrivatePostgres:
    """A data folder in `folder` (a copy of `template`, an initdb-made one, when given: faster
    than initdb), then `start()`/`stop()` a server on a free 127.0.0.1 port."""

    def __init__(self, folder: Path, bin_dir: Path, template: Path | None = None) -> None:
        self.bin = bin_dir
        self.folder = folder
        """Reachable by the server's user (a tablespace may go here)."""
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_user: list[str] = []
        if getpass.getuser() == "root":
            self._as_user = ["runuser", "-u", "postgres", "--"]
            owner = pwd.getpwnam("postgres")
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        if template is None:
            self._run(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            )
        else:
            self._run("cp", "-a", str(template), str(self.data))

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.data / "server.log")
        pg_ctl = str(self.bin / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-w", "-l", log, "-o", options, "start")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop")

    def _run(self, *argv: str) -> None:
        """Run `argv` as the server's user."""
        subprocess.run(
            [*self._as_user, *argv],
            check=True,
            timeout=120,
            capture_output=True,
        )


def why_no_private_postgres() -> str | None:
    """None when this machine can make a private server; else why not (one line)."""
    if postgres_bin() is None:
        return "PostgreSQL's initdb and pg_ctl are not installed"
    if getpass.getuser() == "root":
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root without runuser"
    return None


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    """A new folder for a private server, removed after; skips the test where this machine
    cannot make a server. Not under pytest's tmp_path: the postgres user must reach it."""
    why = why_no_private_postgres()
    if why is not None:
        pytest.skip(why)
    folder = Path(tempfile.mkdtemp(prefix="pipeline-test-pg-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def initdb_template() -> Iterator[Path]:
    """A data folder made by initdb, for servers to copy; removed after."""
    with private_folder() as folder:
        bin_dir = postgres_bin()
        assert bin_dir is not None
        yield PrivatePostgres(folder, bin_dir).data


@contextlib.contextmanager
def running_private_postgres(template: Path | None = None) -> Iterator[PrivatePostgres]:
    """A running PostgreSQL server of the caller's own (its data a copy of `template` when
    given), removed after."""
    with private_folder() as folder:
        bin_dir = postgres_bin()
        assert bin_dir is not None
        server = PrivatePostgres(folder, bin_dir, template)
        server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                server.stop()  # already stopped where the test stopped it
