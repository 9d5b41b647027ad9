"""Throwaway PostgreSQL clusters for tests that need a server of their own (WAL archiving,
point-in-time recovery): initdb + pg_ctl from the installed PostgreSQL, in a private temporary
folder, on a free loopback port, trust authentication for loopback only.

initdb refuses to run as root, so when the tests run as root (CI containers, this machine) every
server command runs as the `postgres` OS user (`runuser -u postgres --`) and the folders it
uses are made over to that user. Self-contained on purpose: the failover tests keep their own.

    bindir_problem()  -> None, or why the binaries cannot be used (the caller skips or fails)
    c = Cluster.create(conf={"archive_mode": "on", ...}); c.start(); c.url("ayni"); c.stop()
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BINDIR = Path(os.environ.get("AYNI_PG_BINDIR") or "/usr/lib/postgresql/15/bin")
TOOLS = ("initdb", "pg_ctl", "pg_basebackup")


def _as_postgres() -> bool:
    return os.geteuid() == 0


def bindir_problem() -> str | None:
    missing = [t for t in TOOLS if not (BINDIR / t).is_file()]
    if missing:
        return f"no {', '.join(missing)} in {BINDIR} (set AYNI_PG_BINDIR)"
    if _as_postgres():
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` OS user to run initdb as"
        if not shutil.which("runuser"):
            return "running as root and runuser is missing (needed to run initdb as postgres)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def give_to_postgres(path: Path) -> None:
    """Make `path` (recursively) the server user's when running as root."""
    if _as_postgres():
        pw = pwd.getpwnam("postgres")
        for root, dirs, files in os.walk(path):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def run(*cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """A server tool (bare name: from BINDIR), as the postgres user when we are root."""
    argv = [str(BINDIR / cmd[0]) if "/" not in cmd[0] else cmd[0], *cmd[1:]]
    if _as_postgres():
        argv = ["runuser", "-u", "postgres", "--", *argv]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


def scratch(prefix: str = "ayni-pg-") -> Path:
    """A private folder the server user owns (pytest's tmp_path is root's 0700: postgres cannot enter)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o700)
    give_to_postgres(path)
    return path


class Cluster:
    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.data = root / "data"
        self.log = root / "server.log"

    @classmethod
    def create(cls, conf: dict[str, str] | None = None) -> "Cluster":
        root = scratch()
        c = cls(root, free_port())
        run("initdb", "-D", str(c.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync",
            "--no-instructions")
        c.configure(conf or {})
        return c

    @classmethod
    def from_data(cls, data: Path, conf: dict[str, str] | None = None) -> "Cluster":
        """A cluster on an existing data folder (a base backup being restored)."""
        c = cls(data.parent, free_port())
        c.data = data
        c.configure(conf or {})
        return c

    def configure(self, conf: dict[str, str]) -> None:
        settings = {"listen_addresses": "'127.0.0.1'", "port": str(self.port),
                    "unix_socket_directories": f"'{self.root}'", "fsync": "off",  # a throwaway cluster
                    "max_connections": "40", "shared_buffers": "16MB", **conf}
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n# tests/pg_cluster.py\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def start(self, *, wait: bool = True) -> None:
        give_to_postgres(self.root)
        run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w" if wait else "-W", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def sql(self, statement: str, db: str = "postgres"):
        """Run one statement in autocommit; the first column of the first row (or None)."""
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=db, autocommit=True,
                             connect_timeout=10) as conn:
            cur = conn.execute(statement)
            row = cur.fetchone() if cur.description else None
            return row[0] if row else None

    def wait_until(self, statement: str, *, timeout: float = 60, db: str = "postgres") -> None:
        """Poll until `statement` returns true (e.g. recovery has finished)."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                if self.sql(statement, db):
                    return
            except Exception as exc:  # noqa: BLE001 - starting up: not accepting connections yet
                last = exc
            time.sleep(0.2)
        raise TimeoutError(f"{statement!r} not true after {timeout}s (last error {last}); log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
