"""The "bank" workload (after Jepsen's) against a real `ayni serve`, and its checker.

Used by tests/test_bank.py (a short run in CI) and benchmarks/bank.py (a long run, JSON counts).

Workload: N accounts with tight credit limits and ceilings in both currencies; C concurrent
clients each post random payer-signed transfers, now and then re-post one of their acknowledged
transfers, and read the whole balance sheet (`GET /v1/balances`, treasurer). Meanwhile the
controller SIGKILLs the server's whole process group K times and restarts it on the same port.
A transfer whose answer never arrived (connection refused or reset, timeout, 5xx) is retried
with the *same signed payload* until it gets a definite answer (2xx or 4xx).

Checker (`check`): every read sums to zero per currency, keeps every balance within its limits,
shows every account, and equals the log replayed up to the read's headSeq (a consistent
snapshot); per client, a read never shows a headSeq below one the client already saw or below
the seq of a transfer it was already acknowledged; every acknowledged transfer is in the log
exactly once, at the acknowledged seq; a refused one is not in it; nothing is in it that no
client was acknowledged; a retry is answered with the original seq; `Ledger.verify()` passes
(hash chain, replay with every signature reproduces the stored balances, zero sum).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct

from ledger import signing
from ledger.core.state import LedgerState
from ledger.core.typed_data import address_of_key
from ledger.sample import SampleCommunity
from ledger.service import Ledger

from .servers import ServerNotReady, free_port, wait_ready

AYNI = Path(sys.executable).parent / "ayni"
CURRENCIES = ("HOUR", "CRED")
PURPOSE = {"Ayni-Purpose": "reconciliation"}  # treasurer reads state their purpose


@dataclass
class BankConfig:
    accounts: int = 10
    clients: int = 16
    seconds: float = 20.0      # how long clients keep starting new operations
    kills: int = 3             # SIGKILL + restart of the server during the run
    workers: int = 1
    credit_limit: int = 300    # tight: a good share of transfers is refused
    ceiling: int = 400
    max_amount: int = 150
    read_share: float = 0.2
    repost_share: float = 0.05  # re-post an acknowledged transfer on purpose
    seed: int = 1


@dataclass
class Attempt:
    status: int | None         # None: no answer (connection refused/reset, timeout)
    body: dict | None = None
    error: str = ""
    at: float = field(default_factory=time.monotonic)  # when the answer (or its absence) came
    retry_after: str | None = None  # the Retry-After header of a 429 or 503


@dataclass
class TransferRecord:
    client: int
    body: dict
    attempts: list[Attempt] = field(default_factory=list)
    reposts: list[Attempt] = field(default_factory=list)  # deliberate re-posts after the ack

    @property
    def final(self) -> Attempt | None:
        definite = [a for a in self.attempts if a.status is not None and a.status < 500]
        return definite[-1] if definite else None


@dataclass
class Read:
    client: int
    head_seq: int
    rows: list[dict]


@dataclass
class History:
    config: BankConfig
    accounts: list[str]
    treasurer: str
    transfers: dict[str, TransferRecord] = field(default_factory=dict)  # by EIP-712 digest
    reads: list[Read] = field(default_factory=list)
    sessions: dict[int, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))
    restarts_s: list[float] = field(default_factory=list)
    first_ready_s: float = 0.0
    elapsed_s: float = 0.0
    failed_reads: int = 0
    # reads answered 5xx other than the retryable 503 `unavailable` + Retry-After (a database
    # fault must never surface as a 500: docs/high-availability.md section 3)
    reads_5xx_not_retryable: list[str] = field(default_factory=list)


# -- the server ---------------------------------------------------------------------------
class Server:
    """`ayni serve` in its own process group on a fixed loopback port, so it can be killed
    (the whole group: master and workers) and restarted where the clients expect it."""

    def __init__(self, db_url: str, workers: int, tmp: Path):
        self.db_url, self.workers, self.tmp = db_url, workers, tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"serve-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> float:
        """Start and wait until /readyz answers 200; returns the seconds that took."""
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AYNI_")},
               "AYNI_SESSION_KEY_FILE": str(self.tmp / "session.key")}  # tokens survive restarts
        t0 = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(AYNI), "serve", "--db", self.db_url, "--port", str(self.port), "--workers", str(self.workers)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.tmp, start_new_session=True)
        try:  # polled often: the restart time after a SIGKILL is one of the figures
            wait_ready(self.base, self.proc, timeout=timeout, interval=0.05)
        except ServerNotReady as exc:
            self.stop()
            raise RuntimeError(f"{exc}: {self.log_tail()}") from None
        return time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL the whole group: no shutdown hook runs, in-flight transactions are cut."""
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=10)
        # a worker may outlive the master by a moment: the port must be free before restarting
        deadline = time.monotonic() + 10
        while _group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def _signal_group(self, sig) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# -- setup --------------------------------------------------------------------------------
def setup(db_url: str, cfg: BankConfig):
    """A community with `accounts` members whose limits are tight in both currencies."""
    c = SampleCommunity(db_url, name="bank")
    treasurer, domain, ledger = c.treasurer_key, c.domain, c.ledger
    keys = c.accounts(cfg.accounts)
    results = ledger.submit_many([signing.set_limit(treasurer, domain, account=address_of_key(k), currency=cur,
                                                    credit_limit=cfg.credit_limit, ceiling=cfg.ceiling)
                                  for k in keys for cur in CURRENCIES])
    assert all(not isinstance(r, Exception) for r in results), results
    ledger.engine.dispose()
    return treasurer, domain, keys


def sign_in(base: str, key: bytes) -> str:
    with httpx.Client(base_url=base, timeout=10) as http:
        ch = http.post("/v1/auth/challenge", json={"address": address_of_key(key)})
        ch.raise_for_status()
        msg = ch.json()["message"]
        sig = Account.sign_message(encode_defunct(text=msg), key).signature.hex()
        r = http.post("/v1/auth/token", json={"message": msg, "signature": "0x" + sig.removeprefix("0x")})
        r.raise_for_status()
        return r.json()["token"]


# -- the run ------------------------------------------------------------------------------
class _Token:
    def __init__(self, base: str, key: bytes):
        self.base, self.key, self.lock, self.value = base, key, threading.Lock(), None

    def get(self, stale: str | None = None) -> str:
        with self.lock:
            if self.value is None or self.value == stale:
                self.value = sign_in(self.base, self.key)
            return self.value


def _post(http: httpx.Client, body: dict) -> Attempt:
    try:
        r = http.post("/v1/transfers", json=body)
    except httpx.HTTPError as exc:
        return Attempt(None, error=type(exc).__name__)
    try:
        data = r.json()
    except ValueError:
        data = {"raw": r.text[:200]}
    return Attempt(r.status_code, data, retry_after=r.headers.get("retry-after"))


def run(db_url: str, tmp: Path, cfg: BankConfig, fault=None) -> History:
    """`fault(k, server) -> seconds`, when given, replaces the k-th SIGKILL + restart of the
    server (tests/test_failover.py kills the database instead); its seconds join restarts_s."""
    treasurer, domain, keys = setup(db_url, cfg)
    addrs = [address_of_key(k) for k in keys]
    hist = History(cfg, addrs, address_of_key(treasurer))
    server = Server(db_url, cfg.workers, tmp)
    hist.first_ready_s = server.start()
    token = _Token(server.base, treasurer)
    token.get()
    stop = threading.Event()
    lock = threading.Lock()
    give_up = [float("inf")]  # clients stop retrying only if the server never comes back

    def answered(http, rec: TransferRecord, body: dict) -> Attempt:
        """Post until a definite answer (retrying the same signed payload)."""
        pause = 0.05
        while True:
            a = _post(http, body)
            with lock:
                rec.attempts.append(a)
            if a.status is not None and a.status < 500:
                return a
            if time.monotonic() > give_up[0]:
                return a
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def client(c: int) -> None:
        rng = random.Random(cfg.seed * 1000 + c)
        mine: list[str] = []  # digests this client was acknowledged
        session = hist.sessions[c]
        with httpx.Client(base_url=server.base, timeout=10) as http:
            while not stop.is_set():
                x = rng.random()
                if x < cfg.read_share:
                    tok = token.get()
                    try:
                        r = http.get("/v1/balances", headers={"Authorization": f"Bearer {tok}", **PURPOSE})
                    except httpx.HTTPError:
                        r = None
                    if r is not None and r.status_code == 401:
                        token.get(stale=tok)
                    if r is None or r.status_code != 200:
                        with lock:
                            hist.failed_reads += 1
                            if r is not None and r.status_code >= 500 and not (
                                    r.status_code == 503 and r.headers.get("retry-after")
                                    and "unavailable" in r.text):
                                hist.reads_5xx_not_retryable.append(f"{r.status_code} {r.text[:160]}")
                        time.sleep(0.05)
                        continue
                    data = r.json()
                    with lock:
                        hist.reads.append(Read(c, data["headSeq"], data["balances"]))
                    session.append(("read", data["headSeq"]))
                elif x < cfg.read_share + cfg.repost_share and mine:
                    rec = hist.transfers[rng.choice(mine)]
                    a = _post(http, rec.body)
                    with lock:
                        rec.reposts.append(a)
                else:
                    i, j = rng.sample(range(cfg.accounts), 2)
                    sub = signing.transfer(keys[i], domain, payee=addrs[j], currency=rng.choice(CURRENCIES),
                                           amount=rng.randint(1, cfg.max_amount))
                    digest = "0x" + domain.digest(sub.action.struct_hash()).hex()
                    body = signing.transfer_json(sub)
                    rec = TransferRecord(c, body)
                    with lock:
                        hist.transfers[digest] = rec
                    a = answered(http, rec, body)
                    if a.status in (200, 201):
                        mine.append(digest)
                        session.append(("ack", a.body["seq"]))

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(cfg.clients)]
    t0 = time.monotonic()
    try:
        for t in threads:
            t.start()
        for k in range(cfg.kills):
            _sleep_until(t0 + cfg.seconds * (k + 1) / (cfg.kills + 1), stop)
            if fault is not None:
                hist.restarts_s.append(fault(k, server))
                continue
            server.kill()
            hist.restarts_s.append(server.start())
        _sleep_until(t0 + cfg.seconds, stop)
        stop.set()
        give_up[0] = time.monotonic() + 60
        for t in threads:
            t.join(timeout=120)
        hist.elapsed_s = time.monotonic() - t0
    finally:
        stop.set()
        give_up[0] = 0
        server.stop()
    if any(t.is_alive() for t in threads):
        raise RuntimeError("a bank client did not finish")
    return hist


def _sleep_until(when: float, stop: threading.Event) -> None:
    stop.wait(max(0.0, when - time.monotonic()))


# -- the checker --------------------------------------------------------------------------
def check(hist: History, ledger: Ledger) -> tuple[list[str], dict]:
    """(faults, counts). No faults means every property in the module docstring held."""
    faults: list[str] = []
    cfg = hist.config
    expected_accounts = set(hist.accounts) | {hist.treasurer}

    # what the log holds
    log_transfers: dict[str, list[int]] = defaultdict(list)
    entries = list(ledger.iter_entries())
    for e in entries:
        if e.kind == "transfer.posted":
            log_transfers[e.body["digest"]].append(e.seq)
    for d, seqs in log_transfers.items():
        if len(seqs) > 1:
            faults.append(f"transfer {d} is in the log {len(seqs)} times (seqs {seqs})")

    # every acknowledged transfer exactly once at its seq; refused ones absent; no phantoms
    acked, refused, unresolved = {}, Counter(), 0
    for d, rec in hist.transfers.items():
        seqs = {a.body["seq"] for a in rec.attempts + rec.reposts if a.status in (200, 201)}
        if len(seqs) > 1:
            faults.append(f"transfer {d} was acknowledged at different seqs {sorted(seqs)}")
        final = rec.final
        if final is None:
            unresolved += 1  # indeterminate: may or may not be in the log
            continue
        if final.status in (200, 201):
            acked[d] = final.body["seq"]
            if log_transfers.get(d) != [final.body["seq"]]:
                faults.append(f"acknowledged transfer {d} (seq {final.body['seq']}) is in the log at "
                              f"{log_transfers.get(d, [])}")
        else:
            refused[(final.body or {}).get("error", {}).get("code", str(final.status))] += 1
            if d in log_transfers:
                faults.append(f"transfer {d} was refused ({final.status} {final.body}) but is in the log")
        for a in rec.reposts:
            if a.status is not None and a.status not in (200,) and a.status < 500:
                faults.append(f"re-post of acknowledged transfer {d} answered {a.status} {a.body}")
            elif a.status == 200 and not a.body.get("duplicate"):
                faults.append(f"re-post of {d} not reported as a duplicate: {a.body}")
    for d in log_transfers:
        rec = hist.transfers.get(d)
        if rec is None:
            faults.append(f"transfer {d} is in the log but no client sent it")
        elif rec.final is not None and rec.final.status not in (200, 201):
            pass  # reported above
    statuses = Counter(str(a.status) for r in hist.transfers.values() for a in r.attempts)

    # every read: zero sum, within limits, every account, equal to the replayed log at headSeq
    by_seq: dict[int, dict] = {}
    wanted = sorted({r.head_seq for r in hist.reads})
    state, k = LedgerState(), 0
    for e in entries:
        while k < len(wanted) and wanted[k] < e.seq:
            by_seq[wanted[k]] = dict(state.positions)
            k += 1
        state.apply(e, verify_signatures=False)
    while k < len(wanted):
        by_seq[wanted[k]] = dict(state.positions) if wanted[k] <= state.seq else None
        k += 1
    for r in hist.reads:
        where = f"read by client {r.client} at headSeq {r.head_seq}"
        sums = Counter()
        for row in r.rows:
            sums[row["currency"]] += row["balance"]
            ceiling = row["ceiling"]
            if row["balance"] < -row["creditLimit"] or (ceiling is not None and row["balance"] > ceiling):
                faults.append(f"{where}: {row['account']} {row['currency']} {row['balance']} outside its limits")
        if any(sums.values()):
            faults.append(f"{where}: balances do not sum to zero: {dict(sums)}")
        seen = {row["account"] for row in r.rows}
        if seen != expected_accounts:
            faults.append(f"{where}: accounts missing or extra: {sorted(seen ^ expected_accounts)}")
        replayed = by_seq.get(r.head_seq)
        if replayed is None:
            faults.append(f"{where}: the log never reached that seq")
            continue
        got = {(row["account"], row["currency"]): (row["balance"], row["creditLimit"], row["ceiling"])
               for row in r.rows}
        want = {k2: (p.balance, p.credit_limit, p.ceiling) for k2, p in replayed.items()}
        if got != want:
            diff = sorted(k2 for k2 in set(got) | set(want) if got.get(k2) != want.get(k2))[:3]
            faults.append(f"{where}: differs from the log replayed to that seq at {diff}")

    # sessions: a client never reads the past after it saw or was told something newer
    for c, events in hist.sessions.items():
        high = 0
        for kind, seq in events:
            if kind == "read" and seq < high:
                faults.append(f"client {c} read headSeq {seq} after it had seen seq {high}")
            high = max(high, seq)

    report = ledger.verify()
    if not report.ok:
        faults.append(f"Ledger.verify failed: {report}")
    positions = ledger.positions()
    for (a, cur), p in positions.items():
        if p.balance < -p.credit_limit or (p.ceiling is not None and p.balance > p.ceiling):
            faults.append(f"final balance {a} {cur} {p.balance} outside its limits")

    recovered = sum(1 for r in hist.transfers.values()
                    if r.final is not None and r.final.status == 200 and any(a.status is None for a in r.attempts))
    counts = {
        "accounts": cfg.accounts, "clients": cfg.clients, "workers": cfg.workers, "seconds": cfg.seconds,
        "kills": len(hist.restarts_s), "restart_s": [round(x, 2) for x in hist.restarts_s],
        "first_start_s": round(hist.first_ready_s, 2), "elapsed_s": round(hist.elapsed_s, 2),
        "transfers_signed": len(hist.transfers), "acknowledged": len(acked),
        "refused": dict(refused), "unresolved": unresolved,
        "http_attempts": sum(statuses.values()), "attempt_statuses": dict(statuses),
        "no_answer_attempts": statuses.get("None", 0),
        "transfers_retried_after_no_answer": sum(1 for r in hist.transfers.values()
                                                 if len(r.attempts) > 1),
        "lost_acks_recovered_as_duplicates": recovered,
        "deliberate_reposts": sum(len(r.reposts) for r in hist.transfers.values()),
        "reads": len(hist.reads), "failed_reads": hist.failed_reads,
        "reads_5xx_not_retryable": len(hist.reads_5xx_not_retryable),
        "log_entries": len(entries), "log_transfers": len(log_transfers),
        "acknowledged_per_s": round(len(acked) / hist.elapsed_s, 1) if hist.elapsed_s else None,
        "faults": len(faults),
    }
    return faults, counts
