"""Two real PostgreSQL 15 clusters in streaming replication, made by the test itself, for the
failover test (tests/test_failover.py) and benchmark (benchmarks/failover.py).

`Pair.create(synchronous=True)`: node A is the primary (wal_level replica, wal_log_hints so
pg_rewind works, a physical replication slot per standby, synchronous_commit=on), node B a
standby made with pg_basebackup streaming from that slot. With `synchronous` the primary names
B in synchronous_standby_names: a COMMIT returns only once B has flushed its WAL. Without it,
replication is asynchronous (a commit returns after the primary's own flush).

Faults and the operator's steps are the real ones: `kill_primary()` SIGKILLs the primary's
postmaster and every backend (the machine died), `promote()` is `pg_ctl promote`, `rejoin()`
rebuilds the old primary as a standby of the new one with `pg_rewind` (docs/high-availability.md).

Per-node settings (port, socket dir) are given on the postgres command line, not in the data
directory, because pg_basebackup and pg_rewind copy the configuration files from the other node.
synchronous_standby_names is set with ALTER SYSTEM on whichever node is primary, and cleared
from a node when it is (re)made a standby, so a promoted node never waits for a standby it does
not have. initdb refuses to run as root: then every PostgreSQL command runs as the `postgres`
OS user (runuser), in a temporary directory that user owns.
"""
from __future__ import annotations

import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from .servers import free_port

PG_BIN = Path(os.environ.get("AYNI_PG_BIN", "/usr/lib/postgresql/15/bin"))
DB_NAME = "ayni"


def unavailable_reason() -> str | None:
    """Why two clusters cannot be made here (None: they can)."""
    for tool in ("initdb", "pg_ctl", "pg_basebackup", "pg_rewind"):
        if not (PG_BIN / tool).exists():
            return f"{PG_BIN / tool} not found"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], *, timeout: float = 120) -> str:
    p = subprocess.run(_as_owner(cmd), check=False, capture_output=True, text=True, timeout=timeout)
    if os.environ.get("PG_HA_DEBUG"):
        print(cmd[0], p.stdout, p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return p.stdout


@dataclass
class Node:
    name: str
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / self.name

    @property
    def logfile(self) -> Path:
        return self.root / f"{self.name}.log"

    def conninfo(self, db: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}"

    def connect(self, db: str = "postgres", timeout: float = 5):
        return psycopg.connect(self.conninfo(db), autocommit=True, connect_timeout=max(1, int(timeout)))

    def sql(self, query: str, params=None):
        with self.connect() as c:
            cur = c.execute(query, params)
            return cur.fetchall() if cur.description else None

    def start(self) -> None:
        # the node's own settings on the command line: they outrank the copied config files
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60",
              "-o", opts, "start"])

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                                      "stop"]), check=False, capture_output=True, timeout=60)

    def postmaster_pid(self) -> int | None:
        """The running postmaster of this data directory (a stale pid file's number may belong
        to another process by now: only a postgres whose command line names our directory counts)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if str(self.data).encode() in cmdline else None

    def kill(self) -> None:
        """SIGKILL the postmaster and all its processes at once, as when the machine dies: no
        backend gets to answer a client, no WAL sender sends one more byte."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        pids = [pid, *_children(pid)]  # its own processes only, found before any of them dies
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        # an unreaped (zombie) postmaster still "exists" for the next postgres' lock-file check;
        # after a real crash the machine reboots and that PID is gone: remove the stale locks
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        (self.root / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)

    def promote(self) -> None:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "promote"])

    def make_standby_of(self, primary: Node, port: int | None = None) -> None:
        """Recovery settings pointing at `primary` (through the slot named after this node), and
        no synchronous_standby_names of its own (copied from the other node by basebackup/rewind)."""
        auto = self.data / "postgresql.auto.conf"
        kept = [line for line in auto.read_text().splitlines()
                if not line.split("=", 1)[0].strip() in ("synchronous_standby_names", "primary_conninfo",
                                                         "primary_slot_name")] if auto.exists() else []
        kept += [(f"primary_conninfo = 'host=127.0.0.1 port={port or primary.port} user=postgres "
                  f"application_name={self.name}'"),
                 f"primary_slot_name = '{self.name}'"]
        _write_owned(auto, "\n".join(kept) + "\n")
        _write_owned(self.data / "standby.signal", "")


class Pair:
    """Node A and node B; `primary` and `standby` follow promotions."""

    def __init__(self, root: Path, synchronous: bool, link_delay_s: float = 0.0):
        self.root, self.synchronous, self.link_delay_s = root, synchronous, link_delay_s
        self.link: DelayLink | None = None
        self.a = Node("node_a", root, free_port())
        self.b = Node("node_b", root, free_port())
        self.primary, self.standby = self.a, self.b

    @classmethod
    def create(cls, *, synchronous: bool, fsync: bool = True, link_delay_s: float = 0.0) -> Pair:
        """`link_delay_s`: replication goes through a DelayLink adding that much one-way
        latency (a standby in another building or data centre) instead of bare loopback."""
        root = Path(tempfile.mkdtemp(prefix="ayni-ha-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
        pair = cls(root, synchronous, link_delay_s)
        try:
            pair._build(fsync)
        except BaseException:
            pair.destroy()
            raise
        return pair

    def _build(self, fsync: bool) -> None:
        a, b = self.a, self.b
        _run([str(PG_BIN / "initdb"), "-D", str(a.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
              "--no-sync", "--locale=C"])
        with open(a.data / "postgresql.conf", "a") as conf:  # copied to B by pg_basebackup
            conf.write("\n# tests/pg_ha.py\n"
                       "wal_level = replica\nmax_wal_senders = 5\nmax_replication_slots = 5\n"
                       "wal_log_hints = on\nhot_standby = on\nsynchronous_commit = on\n"
                       "max_connections = 60\nshared_buffers = 32MB\nmin_wal_size = 32MB\n"
                       # docs/high-availability.md section 1: the WAL pg_rewind needs survives the
                       # dead primary's crash recovery (without it a rejoin often fails)
                       "wal_keep_size = 256MB\n"
                       "wal_retrieve_retry_interval = 200ms\n"
                       f"fsync = {'on' if fsync else 'off'}\n")
        a.start()
        a.sql(f"CREATE DATABASE {DB_NAME}")
        a.sql("SELECT pg_create_physical_replication_slot(%s)", (b.name,))
        _run([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(a.port), "-U", "postgres",
              "-D", str(b.data), "-X", "stream", "-S", b.name, "--checkpoint=fast", "--no-sync"])
        b.make_standby_of(a, self._link_to(a))
        b.start()
        self.wait_replicating()

    def url(self, db: str = DB_NAME) -> str:
        """The multi-host URL the service is given: both nodes, the writable one chosen at connect."""
        return (f"postgresql+psycopg://postgres@127.0.0.1:{self.a.port},127.0.0.1:{self.b.port}/{db}"
                "?target_session_attrs=read-write")

    def new_database(self, name: str) -> str:
        """A fresh database on the primary (one pair serves several runs); its multi-host URL."""
        self.primary.sql(f"CREATE DATABASE {name}")
        return self.url(name)

    def set_synchronous(self, synchronous: bool) -> None:
        """Switch the running pair between synchronous and asynchronous replication."""
        self.synchronous = synchronous
        self.wait_replicating()

    def wait_replicating(self, timeout: float = 60) -> None:
        """Until the standby streams from the primary; with `synchronous`, named and in sync."""
        want = self.standby.name
        self.primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{want if self.synchronous else ''}'")
        self.primary.sql("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            rows = self.primary.sql("SELECT application_name, state, sync_state FROM pg_stat_replication")
            state = rows
            if any(r[0] == want and r[1] == "streaming" and r[2] == ("sync" if self.synchronous else "async")
                   for r in rows):
                return
            time.sleep(0.1)
        raise RuntimeError(f"standby {want} not replicating from {self.primary.name}: {state}\n{self.log_tail()}")

    def kill_primary(self) -> None:
        self.primary.kill()
        if self.link is not None:  # the link dies with the machine: WAL still on the wire is lost
            self.link.cut()  # (after the kill: a primary cut off first would go on acknowledging)

    def _link_to(self, primary: Node) -> int:
        """The port a standby reaches `primary` at: the primary's own, or a DelayLink's."""
        if not self.link_delay_s:
            return primary.port
        if self.link is not None:
            self.link.cut()
        self.link = DelayLink(primary.port, self.link_delay_s)
        return self.link.port

    def promote(self) -> None:
        """`pg_ctl promote` on the standby; it becomes the primary (and runs alone until rejoin).
        As docs/high-availability.md section 4 says, first check that the standby names no
        synchronous standby of its own (make_standby_of removed the copied setting): a promoted
        node that does waits for itself and every payment hangs."""
        named = self.standby.sql("SHOW synchronous_standby_names")
        assert named in ([], [("",)]), f"the standby would promote naming a synchronous standby: {named}"
        self.standby.promote()
        self.primary, self.standby = self.standby, self.primary

    def rejoin(self) -> float:
        """Rebuild the old primary (now `standby`, dead) as a standby of the new primary with
        pg_rewind, start it, and (synchronous pair) name it synchronous again. Seconds taken."""
        t0 = time.monotonic()
        old, new = self.standby, self.primary
        new.sql("SELECT pg_create_physical_replication_slot(%s) WHERE NOT EXISTS "
                "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)", (old.name, old.name))
        # pg_rewind reads the new primary's timeline from its control file, which a promotion
        # updates only at its next checkpoint: without this it may say "no rewind required" and
        # leave a node that cannot follow the new timeline.
        new.sql("CHECKPOINT")
        # After a crash pg_rewind first runs the old node's crash recovery itself (single-user
        # mode), then rewinds it to where the new primary's timeline forked off.
        # (--no-sync: throwaway clusters; an operator leaves it out)
        self.rewind_output = _run([str(PG_BIN / "pg_rewind"), "-D", str(old.data), "--no-sync",
                                   f"--source-server={new.conninfo()}"],
             timeout=300)
        old.make_standby_of(new, self._link_to(new))
        old.start()
        self.wait_replicating()
        return time.monotonic() - t0

    def destroy(self) -> None:
        if self.link is not None:
            self.link.cut()
        for n in (self.a, self.b):  # throwaway clusters: no clean shutdown needed
            n.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, n: int = 2000) -> str:
        out = []
        for node in (self.a, self.b):
            try:
                out.append(f"--- {node.name}\n{node.logfile.read_text(errors='replace')[-n:]}")
            except OSError:
                pass
        return "\n".join(out)


class DelayLink:
    """A loopback TCP relay that delivers every byte `delay_s` after it was sent, both ways: the
    replication connection over a slower network. `cut()` drops whatever is still on the wire
    and closes every connection, as a dead machine's network link does."""

    def __init__(self, target_port: int, delay_s: float):
        self.target_port, self.delay_s = target_port, delay_s
        self._cut = threading.Event()
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._cut.is_set():
            try:
                down, _ = self._listener.accept()
                up = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                continue
            self._socks += [down, up]
            for a, b in ((down, up), (up, down)):
                q: queue.SimpleQueue = queue.SimpleQueue()
                threading.Thread(target=self._read, args=(a, q), daemon=True).start()
                threading.Thread(target=self._write, args=(b, q), daemon=True).start()

    def _read(self, src: socket.socket, q) -> None:
        while not self._cut.is_set():
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            q.put((time.monotonic() + self.delay_s, data))
            if not data:
                return

    def _write(self, dst: socket.socket, q) -> None:
        while not self._cut.is_set():
            due, data = q.get()
            while not self._cut.is_set() and time.monotonic() < due:
                time.sleep(min(0.002, max(0.0, due - time.monotonic())))
            if self._cut.is_set():
                return
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    def cut(self) -> None:
        self._cut.set()
        for s in [self._listener, *self._socks]:
            try:
                s.close()
            except OSError:
                pass


def _write_owned(path: Path, text: str) -> None:
    path.write_text(text)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o600)


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:  # a zombie (killed, not yet reaped) is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- the bank workload across a database failover (test_failover.py, benchmarks/failover.py) --
# Faults the bank checker reports when the promoted standby lacks the old primary's last
# commits (asynchronous replication): acknowledged transfers missing or at another seq, and
# reads that showed a state the failover lost. Everything else it reports is a fault in any mode.
TAIL_LOSS = ("is in the log at", "acknowledged at different seqs", "re-post of acknowledged transfer",
             "after it had seen seq", "the log never reached that seq", "differs from the log replayed")


@dataclass
class FailoverRun:
    synchronous: bool
    hist: object                     # tests.bank.History
    faults: list[str]                # everything the bank checker found
    counts: dict                     # the bank checker's counts
    figures: dict                    # this run's own figures (see run_failover)
    verify_output: str = ""


def run_failover(*, synchronous: bool, seconds: float, kills: int = 1, clients: int = 16,
                 workers: int = 2, fsync: bool = True, seed: int = 1,
                 promote_after_s: float = 0.0, pair: Pair | None = None,
                 db: str = DB_NAME, link_delay_s: float = 0.0) -> FailoverRun:
    """Two clusters, `ayni serve --workers W --db <multi-host URL>`, the bank clients for
    `seconds`, and `kills` times: SIGKILL the primary, `pg_ctl promote` the standby
    `promote_after_s` later, and (before the next kill) rebuild the dead node as the new standby
    with pg_rewind. The service is never restarted. Then the bank checker and `ayni verify` on
    the last primary. `pair`: an existing pair (left running: its dead node is rebuilt with
    pg_rewind first if needed); else one is made and destroyed. A promotion later than ledger.service.WRITE_RETRY_S makes clients see
    503 + Retry-After and retry themselves; a quicker one is absorbed by the service's own retry."""
    import subprocess as sp
    import sys

    from ledger.service import Ledger

    from .bank import BankConfig, check, run

    t_start = time.monotonic()
    rejoin_s: list[float] = []
    own = pair is None
    if own:
        pair = Pair.create(synchronous=synchronous, fsync=fsync, link_delay_s=link_delay_s)
    elif pair.standby.postmaster_pid() is None or not _alive(pair.standby.postmaster_pid()):
        rejoin_s.append(pair.rejoin())  # the previous run's dead primary, back as the standby
    pair.set_synchronous(synchronous)
    url = pair.new_database(db) if (db != DB_NAME or not own) else pair.url(db)
    tmp = Path(tempfile.mkdtemp(prefix="ayni-failover-"))
    kill_at: list[float] = []
    promoted_s: list[float] = []
    served_by: set[int] = set()
    head_at_promotion: list[int] = []

    def fault(k: int, server) -> float:
        served_by.add(server.proc.pid)
        t0 = time.monotonic()
        kill_at.append(t0)
        pair.kill_primary()
        time.sleep(promote_after_s)
        pair.promote()
        promoted_s.append(time.monotonic() - t0)
        with pair.primary.connect(db) as c:  # what the new primary holds when it opens
            head_at_promotion.append(c.execute("SELECT seq FROM ledger_head").fetchone()[0])
        if k + 1 < kills:  # protected again before the next kill
            rejoin_s.append(pair.rejoin())
        assert server.proc.poll() is None, "ayni serve died with the database"
        served_by.add(server.proc.pid)
        return promoted_s[-1]

    phases = {"create_clusters_s": time.monotonic() - t_start}
    try:
        cfg = BankConfig(seconds=seconds, kills=kills, workers=workers, clients=clients, seed=seed)
        t = time.monotonic()
        hist = run(url, tmp, cfg, fault=fault)
        phases["setup_and_load_s"] = time.monotonic() - t
        t = time.monotonic()
        ledger = Ledger.open(url, migrate=False)
        try:
            faults, counts = check(hist, ledger)
            logged = {e.body["digest"]: e.seq for e in ledger.iter_entries() if e.kind == "transfer.posted"}
        finally:
            ledger.engine.dispose()
        phases["check_s"] = time.monotonic() - t
        t = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}
        v = sp.run([str(Path(sys.executable).parent / "ayni"), "verify", "--db", url],
                   check=False, capture_output=True, text=True, env=env, timeout=300)
        verify_output = f"exit {v.returncode}: {v.stdout.strip()} {v.stderr.strip()}"
        phases["ayni_verify_s"] = time.monotonic() - t
    finally:
        if own:
            pair.destroy()
        shutil.rmtree(tmp, ignore_errors=True)

    acked = {}  # digest -> seq of the first acknowledgement (201, or 200 duplicate)
    for d, rec in hist.transfers.items():
        oks = [a for a in rec.attempts if a.status in (200, 201)]
        if oks:
            acked[d] = oks[0].body["seq"]
    lost = sorted(d for d, seq in acked.items() if logged.get(d) != seq)
    # the first acknowledgement of a transfer the new primary wrote (beyond its head when promoted)
    # (not an acknowledgement the dead primary sent just before it died: that one is lost or old)
    oks_after = [[a.at - t for d, rec in hist.transfers.items() for a in rec.attempts
                  if a.status in (200, 201) and a.at > t and a.body["seq"] > head and logged.get(d) == a.body["seq"]]
                 for t, head in zip(kill_at, head_at_promotion)]
    statuses = counts["attempt_statuses"]
    answers_5xx = [a for rec in hist.transfers.values() for a in rec.attempts
                   if a.status is not None and a.status >= 500]
    figures = {
        "replication": "synchronous" if synchronous else "asynchronous",
        "seconds": seconds, "clients": clients, "workers": workers, "kills": len(kill_at),
        "transfers_acknowledged": len(acked),
        "acknowledged_lost": len(lost),  # acknowledged, but not in the promoted node's log at that seq
        "lost_then_reposted_at_another_seq": sum(1 for d in lost if d in logged),
        # committed, but the answer was lost (no answer, or 503 after the COMMIT went out): the
        # client's retry of the same signed transfer was answered `200 duplicate`, original seq
        "in_doubt_recovered_as_duplicates": sum(
            1 for rec in hist.transfers.values()
            if rec.final is not None and rec.final.status == 200
            and any(a.status is None or a.status >= 500 for a in rec.attempts)),
        # the same, resolved inside the service: its own retry after the lost connection found the
        # transfer committed, so the client's first and only answer was `200 duplicate`
        "in_doubt_resolved_by_service_retry": sum(
            1 for rec in hist.transfers.values()
            if rec.attempts and rec.attempts[0].status == 200 and (rec.attempts[0].body or {}).get("duplicate")),
        "answers_503": statuses.get("503", 0), "no_answer_attempts": statuses.get("None", 0),
        # every 5xx a client saw was the retryable one: 503 `unavailable` with Retry-After
        "answers_5xx_not_retryable": sum(1 for a in answers_5xx if not (
            a.status == 503 and a.retry_after and (a.body or {}).get("error", {}).get("code") == "unavailable")),
        "reads_5xx_not_retryable": len(hist.reads_5xx_not_retryable),
        "reads_5xx_messages": sorted(set(hist.reads_5xx_not_retryable))[:4],
        "answers_5xx_messages": sorted({str((a.body or {}).get("error", {}).get("message", a.body))[:160]
                                        for a in answers_5xx})[:4],
        "promote_after_s": promote_after_s, "replication_link_delay_s": pair.link_delay_s,
        "kill_to_promoted_s": [round(x, 3) for x in promoted_s],
        "kill_to_first_new_ack_s": [round(min(x), 3) if x else None for x in oks_after],
        "acknowledged_after_last_kill": len(oks_after[-1]) if oks_after else 0,
        "rejoin_with_pg_rewind_s": [round(x, 2) for x in rejoin_s],
        "served_by_one_process": len(served_by) == 1,
        "log_transfers": counts["log_transfers"], "unresolved": counts["unresolved"],
        "faults_from_tail_loss": sum(1 for f in faults if any(m in f for m in TAIL_LOSS)),
        "tail_loss_by_kind": {m: n for m in TAIL_LOSS if (n := sum(1 for f in faults if m in f))},
        "other_faults": sum(1 for f in faults if not any(m in f for m in TAIL_LOSS)),
        "verify_ok": verify_output.startswith("exit 0"),
        **{k: round(v, 1) for k, v in phases.items()},
    }
    return FailoverRun(synchronous, hist, faults, counts, figures, verify_output)
