"""Two real `ayni serve` nodes on loopback, allied through the CLI, for the end-to-end tests
(tests/test_federation_e2e.py) and the benchmark (benchmarks/federation.py).

Each node: its own database (SQLite or PostgreSQL), its own community (a treasurer and members
with tight limits in HOUR), its own node key (made by `ayni federation new-key`), and a
FedProxy in front of it: the alliance names the proxy's URL, so every message the other node
sends it passes the proxy, where faults and SIGKILL hooks are set.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ledger import signing
from ledger.chain.keys import write_keystore
from ledger.core.federation import RemoteTransfer, payment_id, peer_address
from ledger.core.typed_data import address_of_key, sign_digest
from ledger.sample import SampleCommunity
from ledger.service import Ledger

from .fed_proxy import FedProxy
from .servers import ServerNotReady, free_port, wait_ready

AYNI = Path(sys.executable).parent / "ayni"
PASSWORD = "correct horse battery staple"
FAST_SCRYPT_N = 2 ** 4  # test keystores only: the format is the same, decryption is instant


def ayni(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}
    return subprocess.run([str(AYNI), *args], capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})})


def ayni_here(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`ayni ARGS` through the same typer app the console script runs, in this process: the
    command's parsing, output and exit code, without an interpreter start (2 s and more on a
    loaded machine, per call). An exception other than the command's exit fails the test, as a
    traceback would. The console script itself is run by the tests that need a process
    (serve, new-key, the demo)."""
    from typer.testing import CliRunner

    from ledger.cli import app
    clean = {k: None for k in os.environ if k.startswith("AYNI_")}
    r = CliRunner().invoke(app, list(args), env={**clean, **(env or {})})
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return subprocess.CompletedProcess(["ayni", *args], r.exit_code, r.stdout, r.stderr)


@dataclass
class Node:
    name: str
    db_url: str
    tmp: Path
    members: int = 4
    credit_limit: int = 300
    timeout_ms: int = 6_000
    retry_ms: int = 300
    workers: int = 1
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    proxy: FedProxy | None = None
    via_proxy: bool = True  # False: the alliance names the node itself (the benchmark)

    def __post_init__(self):
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.tmp / "serve.log"
        self.password_file = self.tmp / "password"
        self.password_file.write_text(PASSWORD)
        self.node_keystore = self.tmp / "node.json"
        self.treasurer_keystore = self.tmp / "treasurer.json"

    # -- the community ----------------------------------------------------------------------
    def create(self, ceiling: int | None = None) -> None:
        c = SampleCommunity(self.db_url, name=f"coop {self.name}")
        self.domain, self.treasurer_key = c.domain, c.treasurer_key
        self.community = c.domain.salt
        self.keys = c.accounts(self.members)
        results = c.ledger.submit_many([signing.set_limit(c.treasurer_key, c.domain, account=address_of_key(k),
                                                          currency="HOUR", credit_limit=self.credit_limit,
                                                          ceiling=ceiling or 10 * self.credit_limit) for k in self.keys])
        assert all(not isinstance(r, Exception) for r in results), results
        c.dispose()
        write_keystore(str(self.treasurer_keystore), self.treasurer_key, PASSWORD, scrypt_n=FAST_SCRYPT_N)
        # `ayni federation new-key` is tested in test_federation_transport.py; here a fast keystore
        node_key = signing.new_key()
        write_keystore(str(self.node_keystore), node_key, PASSWORD, scrypt_n=FAST_SCRYPT_N)
        self.node_address = address_of_key(node_key)
        self.proxy = FedProxy(self.base).__enter__()

    def address(self, i: int) -> str:
        return address_of_key(self.keys[i])

    # -- the process ------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        self.spawn()
        self.wait_started(timeout)

    def spawn(self) -> None:
        """Start `ayni serve` without waiting for it (start_all starts several at once)."""
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AYNI_")},
               "AYNI_SESSION_KEY_FILE": str(self.tmp / "session.key"),
               "AYNI_FEDERATION_TIMEOUT_MS": str(self.timeout_ms), "AYNI_FEDERATION_RETRY_MS": str(self.retry_ms)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(AYNI), "serve", "--db", self.db_url, "--port", str(self.port), "--workers", str(self.workers),
                 "--node-keystore", str(self.node_keystore), "--node-password-file", str(self.password_file),
                 "--node-url", self.proxy.url if self.via_proxy else self.base],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.tmp, start_new_session=True)

    def wait_started(self, timeout: float = 90.0) -> None:
        try:
            wait_ready(self.base, self.proc, timeout=timeout, interval=0.05)
        except ServerNotReady as exc:
            self.stop()
            raise RuntimeError(f"{self.name}: {exc}: {self.log_tail()}") from None

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hook runs."""
        self._kill(self.proc)

    def killer(self):
        """A hook that SIGKILLs the process running NOW: fired late (after a restart), it
        leaves the new process alone."""
        proc = self.proc
        return lambda: self._kill(proc)

    @staticmethod
    def _kill(proc) -> None:
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        time.sleep(0.05)

    def stop(self) -> None:
        self.terminate()
        self.wait_stopped()

    def terminate(self) -> None:
        """SIGTERM (a clean shutdown) without waiting (stop_all stops several at once)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def wait_stopped(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        if self.proxy is not None:
            self.proxy.__exit__(None, None, None)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # -- reading the books (servers stopped) -------------------------------------------------
    def open_ledger(self) -> Ledger:
        return Ledger.open(self.db_url, migrate=False)


def start_all(*nodes: Node) -> None:
    """Start the nodes' servers together: each start is mostly an interpreter's imports."""
    for n in nodes:
        n.spawn()
    for n in nodes:
        n.wait_started()


def stop_all(*nodes: Node) -> None:
    for n in nodes:
        n.terminate()
    for n in nodes:
        n.wait_stopped()


def ally(a: Node, b: Node, *, limit: int = 1000, units=(1, 1)) -> str:
    """A proposes (HOUR:HOUR), B accepts, both through `ayni federation`; the alliance id."""
    pair = f"HOUR:HOUR:{units[0]}:{units[1]}:{limit}:{limit}"
    r = ayni_here("federation", "propose", "--node", a.base, "--peer", b.base, "--pair", pair,
             "--keystore", str(a.treasurer_keystore), "--password-file", str(a.password_file), "--json")
    assert r.returncode == 0, r.stderr + a.log_tail() + b.log_tail()
    import json
    out = json.loads(r.stdout)
    alliance_id = out["allianceId"]
    assert out["delivered"] is True, out  # the peer's 201 is a delivery (issue 15)
    r = ayni_here("federation", "accept", alliance_id, "--node", b.base,
             "--keystore", str(b.treasurer_keystore), "--password-file", str(b.password_file), "--json")
    assert r.returncode == 0, r.stderr + a.log_tail() + b.log_tail()
    # the treasurer is shown the node key (and URL) it is about to trust, to check out of band
    assert a.node_address in r.stderr and "will be trusted" in r.stderr, r.stderr
    return alliance_id


@dataclass
class Payment:
    origin: str           # node name
    payment_id: str
    body: dict
    payer: str
    payee: str
    amount: int
    delivered: int
    answers: list = field(default_factory=list)  # (status, code or state)

    @property
    def acknowledged(self) -> bool:
        return any(s == 201 for s, _ in self.answers)

    @property
    def refused(self) -> bool:
        return any(s is not None and 400 <= s < 500 for s, _ in self.answers)


_nonce = [int(time.time() * 1000)]


def remote_payment(origin: Node, destination: Node, payer_i: int, payee_i: int, amount: int,
                   *, delivered: int | None = None) -> Payment:
    """A RemoteTransfer signed by member `payer_i` of `origin` (not yet posted)."""
    _nonce[0] += 1
    t = RemoteTransfer.create(payer=origin.address(payer_i), payee_community=destination.community,
                              payee=destination.address(payee_i), currency="HOUR", amount=amount,
                              payee_currency="HOUR", delivered=amount if delivered is None else delivered,
                              nonce=_nonce[0], valid_until=int(time.time()) + 3600)
    signature = sign_digest(origin.keys[payer_i], origin.domain.digest(t.struct_hash()))
    pid = "0x" + payment_id(origin.domain, t).hex()
    return Payment(origin.name, pid, {"message": t.message(), "signature": signature}, t.payer, t.payee,
                   t.amount, t.delivered)


def post(node: Node, p: Payment, client: httpx.Client | None = None, timeout: float = 10.0) -> tuple:
    """POST /v1/remote-transfers once; (status or None, code or state) recorded on the payment."""
    try:
        r = (client or httpx).post(node.base + "/v1/remote-transfers", json=p.body, timeout=timeout)
        data = r.json()
        answer = (r.status_code, data["error"]["code"] if r.status_code >= 400 else data.get("state"))
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        answer = (None, type(exc).__name__)
    p.answers.append(answer)
    return answer


def leg_state(node: Node, payment_id: str, client: httpx.Client | None = None) -> str | None:
    try:
        r = (client or httpx).get(f"{node.base}/v1/remote-transfers/{payment_id}", timeout=5)
    except httpx.HTTPError:
        return None
    return r.json().get("state") if r.status_code == 200 else "none"


FINAL = ("committed", "aborted")


def settle(nodes: list[Node], payments: list[Payment], timeout: float = 60.0) -> dict:
    """Wait until no payment is prepared on either node; {paymentId: (origin state, dest state)}.
    A payment decided on both sides is not asked again (a decision is final); one absent on a
    side is, since a late PREPARE may still arrive there."""
    by_name = {n.name: n for n in nodes}
    deadline = time.monotonic() + timeout
    states: dict[str, tuple] = {}
    with httpx.Client() as client:  # one connection per node, not one per question
        while True:
            for p in payments:
                if all(s in FINAL for s in states.get(p.payment_id, (None, None))):
                    continue
                o = by_name[p.origin]
                d = next(n for n in nodes if n is not o)
                states[p.payment_id] = (leg_state(o, p.payment_id, client), leg_state(d, p.payment_id, client))
            if all("prepared" not in s and None not in s for s in states.values()) or time.monotonic() > deadline:
                return {p.payment_id: states[p.payment_id] for p in payments}
            time.sleep(0.2)


def _balance(ledger, address: str) -> int:
    pos = ledger.positions(address).get((address, "HOUR"))
    return pos.balance if pos is not None else 0


def check_books(a: Node, b: Node, payments: list[Payment], states: dict) -> None:
    """The invariants of the module docstring; the servers are stopped first."""
    for p in payments:
        origin_state, dest_state = states[p.payment_id]
        if p.acknowledged:
            assert (origin_state, dest_state) == ("committed", "committed"), (p, states[p.payment_id])
        assert origin_state in ("committed", "aborted", "none"), (p, origin_state)
        assert dest_state in ("committed", "aborted", "none"), (p, dest_state)
        assert (origin_state == "committed") == (dest_state == "committed"), ("split decision", p, origin_state,
                                                                             dest_state)
    committed = [p for p in payments if states[p.payment_id][0] == "committed"]
    stop_all(a, b)
    la, lb = a.open_ledger(), b.open_ledger()
    try:
        for node, ledger in ((a, la), (b, lb)):
            report = ledger.verify()
            assert report.ok, (node.name, report)
            r = ayni_here("verify", "--db", node.db_url)
            assert r.returncode == 0, (node.name, r.stdout, r.stderr)
            for i in range(node.members):
                addr = node.address(i)
                expected = (-sum(p.amount for p in committed if p.payer == addr)
                            + sum(p.delivered for p in committed if p.payee == addr))
                assert _balance(ledger, addr) == expected, (node.name, i)
        a_for_b = _balance(la, peer_address(b.community))
        b_for_a = _balance(lb, peer_address(a.community))
        assert a_for_b == (sum(p.amount for p in committed if p.origin == "A")
                           - sum(p.delivered for p in committed if p.origin == "B"))
        assert a_for_b == -b_for_a, "peer accounts do not mirror"
    finally:
        la.close()
        lb.close()
