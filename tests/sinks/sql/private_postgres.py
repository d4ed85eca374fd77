"""A PostgreSQL server of the test's own, on a free port, that a test may stop and start.

The machine's shared server is never stopped: an outage test makes its own with `initdb`
and `pg_ctl` (run as the `postgres` user when the tests run as root, which initdb refuses).
"""

from __future__ import annotations

import getpass
import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from tests.conftest import free_port


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when they are not installed."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


class PrivatePostgres:
    """initdb into `folder`, then `start()`/`stop()` a server on a free 127.0.0.1 port."""

    def __init__(self, folder: Path, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_user: list[str] = []
        if getpass.getuser() == "root":
            self._as_user = ["runuser", "-u", "postgres", "--"]
            owner = pwd.getpwnam("postgres")
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.data / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", log, "-o", options, "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self._as_user, str(self.bin / program), *args],
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
