"""Anchoring under faults, against a real Hardhat node behind a real misbehaving JSON-RPC proxy
(tests/rpc_proxy.py): replies lost after the node accepted a transaction, requests lost before
it, reverts, timeouts, gateway errors, and the node SIGKILLed and restarted (twice) while a
watcher anchors small batches and entries keep arriving. Afterwards no range is lost, skipped
or anchored twice: the chain's batches are exactly 1..head, contiguous, each once, each root
equal to the root recomputed from the log, and equal to the ledger's confirmed records; then
`ayni verify` and `ayni-wallet reconcile` (on an `ayni export-log` file) pass."""
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ledger.anchoring import Anchoring
from ledger.chain import AnchorChain, ChainError
from ledger.core.typed_data import address_of_key

from .conftest import Community
from .hardhat_node import HARDHAT_KEYS, hardhat_node, rpc
from .rpc_proxy import RpcProxy

BIN = Path(sys.executable).parent


def cli(*args):
    return subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("AYNI_")})


class Coop:
    def __init__(self, url):
        self.c = Community(url)
        for n in ("ana", "bea", "cai"):
            self.c.member(n)
        self.i = 0

    def post(self, n):
        names = ("ana", "bea", "cai")
        for _ in range(n):
            self.i += 1
            self.c.ledger.submit(self.c.pay(names[self.i % 3], names[(self.i + 1) % 3], 1 + self.i % 7,
                                            memo=f"visit {self.i}"))


def restore(proxy: RpcProxy, stack: contextlib.ExitStack) -> str:
    """A new node carrying the dead one's chain: replay every transaction it had accepted."""
    node = stack.enter_context(hardhat_node())
    for raw in list(proxy.accepted_txs):
        rpc(node, "eth_sendRawTransaction", [raw], timeout=10)
    proxy.upstream = node
    return node


@pytest.mark.slow
def test_no_range_lost_skipped_or_anchored_twice(tmp_path):
    coop = Coop(f"sqlite:///{tmp_path}/coop.db")
    ledger = coop.c.ledger
    errors: list[str] = []
    with contextlib.ExitStack() as stack:
        node = stack.enter_context(hardhat_node())
        proxy = stack.enter_context(RpcProxy(node))
        chain = AnchorChain.connect(proxy.url, private_key=HARDHAT_KEYS[0], timeout=2.0)
        contract, _ = chain.deploy(admin=address_of_key(HARDHAT_KEYS[1]))
        job = Anchoring(ledger, chain, max_batch=3)

        def attempt():
            """One round as `ayni anchor --watch` runs it: a chain fault only delays anchoring."""
            try:
                job.run(wait_s=3)
            except ChainError as exc:
                errors.append(exc.code)

        def anchored_through() -> int:
            rows = [b for b in job.batches(include_failed=False) if b["status"] == "confirmed"]
            return rows[-1]["last_seq"] if rows else 0

        def settle(timeout=30.0):
            deadline = time.monotonic() + timeout
            while anchored_through() < ledger.head()[0]:
                assert time.monotonic() < deadline, job.batches()
                attempt()

        def faulted(method, kind, **kw):
            coop.post(4)
            proxy.fault(method, kind, **kw)
            attempt()
            assert proxy.count(method, kind) >= 1, f"{kind} on {method} never triggered"
            settle()

        coop.post(5)
        settle()
        faulted("eth_sendRawTransaction", "lose_reply")     # landed, unknown to us: adopted later
        faulted("eth_sendRawTransaction", "lose_request")   # never landed: marked failed, sent again
        faulted("eth_estimateGas", "revert")                # refused: marked failed, sent again
        faulted("eth_getTransactionReceipt", "delay", seconds=2.5, times=2)  # timeouts
        faulted("*", "http_502", times=3)                   # a gateway in front of the node fails
        assert {"chain_unavailable", "anchor_reverted"} <= set(errors), errors

        # the node dies (twice) while a watcher anchors batches of 3 and members keep paying
        stop = threading.Event()

        def watcher():
            while not stop.is_set():
                attempt()
                time.sleep(0.05)

        w = threading.Thread(target=watcher, daemon=True)
        w.start()
        nodes = [node]
        try:
            for _ in range(2):
                coop.post(10)
                time.sleep(0.5)
                os.killpg(nodes[-1].pgid, signal.SIGKILL)
                proxy.upstream = None
                time.sleep(0.3)  # in-flight forwards fail; what the node acknowledged is recorded
                coop.post(3)
                nodes.append(restore(proxy, stack))
            coop.post(4)
            deadline = time.monotonic() + 45  # the watcher (the only anchorer) catches up
            while anchored_through() < ledger.head()[0]:
                assert time.monotonic() < deadline, job.batches()
                time.sleep(0.2)
        finally:
            stop.set()
            w.join(timeout=30)
        assert proxy.count("*", "node_down") > 0  # the watcher did run into the dead node

        # what the chain holds: 1..head in contiguous batches, each once, roots from the log
        head = ledger.head()[0]
        events = chain.anchored_events()
        ranges = [(e.first_seq, e.last_seq) for e in events]
        assert ranges[0][0] == 1 and ranges[-1][1] == head
        assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:])), ranges  # no gap, no overlap
        assert len(set(r[0] for r in ranges)) == len(ranges)
        for e in events:
            assert e.root == job.tree(e.first_seq, e.last_seq).root
        assert chain.last_anchored_seq() == head
        rows = job.batches(include_failed=False)
        assert [(b["first_seq"], b["last_seq"]) for b in rows] == ranges, "\n".join(map(str, [ranges] + [(b["id"], b["first_seq"], b["last_seq"], b["status"], b["tx_hash"], b["error"]) for b in job.batches()]))
        assert all(b["status"] == "confirmed" for b in rows)
        assert [bytes(b["root"]) for b in rows] == [e.root for e in events]
        failed = [b for b in job.batches() if b["status"] == "failed"]
        assert failed, "no fault ever made a batch fail: the test did not test recovery"
        assert ledger.verify().ok

        # the operator's and the treasurer's own checks
        db = f"sqlite:///{tmp_path}/coop.db"
        r = cli("ayni", "verify", "--db", db)
        assert r.returncode == 0, r.stdout + r.stderr
        export = tmp_path / "log.jsonl"
        r = cli("ayni", "export-log", "--db", db, "--out", export, "--contract", contract)
        assert r.returncode == 0, r.stderr
        r = cli("ayni-wallet", "reconcile", "--log", export, "--chain", proxy.url, "--contract", contract,
                "--workers", "0")
        assert r.returncode == 0, r.stdout + r.stderr
    coop.c.dispose()


@pytest.mark.slow
def test_two_anchorers_at_once_record_each_batch_once(db_url):
    """`ayni anchor` by hand while `ayni serve --anchor-every` runs: each batch is recorded once
    (batch rows are checked and inserted under one lock), and the chain holds each range once."""
    coop = Coop(db_url)
    ledger = coop.c.ledger
    coop.post(30)
    with hardhat_node() as node:
        deployer = AnchorChain.connect(node, private_key=HARDHAT_KEYS[0])
        contract, _ = deployer.deploy(admin=address_of_key(HARDHAT_KEYS[1]))
        jobs = [Anchoring(ledger, AnchorChain.connect(node, private_key=HARDHAT_KEYS[0], contract_address=contract),
                          max_batch=1) for _ in range(2)]

        def anchorer(job):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if job.run(wait_s=3).anchored_through == ledger.head()[0]:
                        return
                except ChainError:
                    pass  # the other anchorer took the nonce or the range: try again

        threads = [threading.Thread(target=anchorer, args=(j,)) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ranges = [(b["first_seq"], b["last_seq"]) for b in jobs[0].batches(include_failed=False)]
        events = [(e.first_seq, e.last_seq) for e in deployer.anchored_events()]
        assert events == [(i, i) for i in range(1, ledger.head()[0] + 1)]  # the chain itself is right
        assert ranges == events, f"{len(ranges) - len(set(ranges))} ranges recorded twice"
    coop.c.dispose()
