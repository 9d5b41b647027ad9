"""Two real `ayni serve` nodes on loopback paying each other across an alliance, with a fault
proxy between them and SIGKILLs at protocol steps (docs/federation.md, "Failure cases").

After recovery, for every run:
- a payment acknowledged 201 to its payer is committed on both sides; every other payment is
  committed on both or on neither (never split), and nothing moves that no payer signed;
- each committed payment moved money exactly once: every member's balance and each peer
  account equal what the committed payments say (no local transfers happen here);
- both ledgers verify (hash chain, signatures, replay, zero-sum) in-process and by `ayni verify`;
- the peer accounts mirror each other (1:1 pair: A's account for B = -B's account for A).
The long fault run is benchmarks/federation.py --faults.
"""
from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from .federation_nodes import (
    Node,
    Payment,
    ally,
    ayni_here,
    check_books,
    leg_state,
    post,
    remote_payment,
    settle,
    start_all,
)


def _start(nodes):
    for n in nodes:
        n.create()
    start_all(*nodes)
    return ally(nodes[0], nodes[1])


def _restart_if_dead(*nodes: Node) -> None:
    start_all(*(n for n in nodes if n.proc is not None and n.proc.poll() is not None))


def _wait_for(what: str, ready, timeout: float) -> None:
    """Poll `ready()` (every 0.1 s) instead of sleeping for the worst case."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.1)


def test_payments_both_ways_with_faults_and_kills(tmp_path):
    a, b = Node("A", f"sqlite:///{tmp_path}/a.db", tmp_path / "A"), Node("B", f"sqlite:///{tmp_path}/b.db",
                                                                         tmp_path / "B")
    try:
        alliance_id = _start([a, b])
        payments: list[Payment] = []

        def pay(origin, dest, i, j, amount, *, hook=None, **kw):
            """Post one payment; `hook` = (proxy, kind, callback): run when THIS payment's
            message of that kind has passed the proxy (i.e. reached the node behind it)."""
            p = remote_payment(origin, dest, i, j, amount, **kw)
            payments.append(p)
            fired = threading.Event()
            if hook is not None:
                proxy, kind, callback = hook
                proxy.on(kind, lambda: (callback(), fired.set()), payment=p.payment_id)
            post(origin, p)
            if hook is not None:  # the kill happened (now, or by the driver's re-send): restart
                assert fired.wait(15), f"the {kind} of {p.payment_id} never passed the proxy"
                _restart_if_dead(a, b)
            return p

        # the common case, both ways: 201 at once
        assert pay(a, b, 0, 1, 30).answers == [(201, "committed")]
        assert pay(b, a, 2, 3, 20).answers == [(201, "committed")]
        # refusals by the destination's rules reach the payer with their own code, nothing written
        bad = pay(a, b, 0, 1, 10, delivered=11)
        assert bad.answers[0][0] == 422 and bad.answers[0][1] == "rate_mismatch", bad.answers
        # a re-post of the same signed payment is the same payment, never a second one
        again = Payment(**{**payments[0].__dict__, "answers": []})
        post(a, again)
        assert again.answers == [(201, "committed")]

        # lost and duplicated messages: the driver re-sends, duplicates change nothing
        b.proxy.fault("prepare", "lose_request")
        pay(a, b, 1, 0, 5)
        a.proxy.fault("prepare", "lose_reply")
        pay(b, a, 0, 1, 7)
        b.proxy.fault("commit", "duplicate")
        b.proxy.fault("prepare", "duplicate")
        pay(a, b, 2, 2, 9)
        # delayed and reordered: this COMMIT reaches B after the next payment's whole exchange
        b.proxy.fault("commit", "delay", seconds=1.5)
        pay(a, b, 0, 2, 4)
        pay(a, b, 1, 3, 4)

        # SIGKILL the destination right after it received PREPARE (its prepared leg is durable)
        pay(a, b, 3, 0, 11, hook=(b.proxy, "prepare", b.killer()))
        # SIGKILL the origin right after its prepared entry (PREPARE on the wire)
        p = pay(a, b, 0, 3, 13, hook=(b.proxy, "prepare", a.killer()))
        assert p.answers[0][0] is None  # the payer never heard
        # SIGKILL the origin right after its decision (COMMIT on the wire), the destination after COMMIT
        pay(a, b, 1, 2, 3, hook=(b.proxy, "commit", a.killer()))
        pay(a, b, 2, 1, 4, hook=(b.proxy, "commit", b.killer()))
        # both killed at once right after the destination's prepared leg
        pay(a, b, 3, 3, 6, hook=(b.proxy, "prepare", lambda ka=a.killer(), kb=b.killer(): (ka(), kb())))
        a.proxy.clear()
        b.proxy.clear()

        # the destination down longer than the timeout: the origin aborts, nothing at B
        b.stop()
        slow = pay(a, b, 0, 0, 8)
        assert slow.answers[-1][0] in (202, None), slow.answers
        # the origin presumes the abort at its deadline (its driver's next tick): wait for that
        _wait_for("the presumed abort", lambda: leg_state(a, slow.payment_id) == "aborted", a.timeout_ms / 1000 + 10)
        b.start()

        states = settle([a, b], payments, timeout=30)
        assert states[slow.payment_id] in (("aborted", "none"), ("aborted", "aborted")), states[slow.payment_id]
        # after recovery, more payments flow both ways
        assert pay(b, a, 1, 1, 2).answers[-1] == (201, "committed")
        assert pay(a, b, 1, 1, 2).answers[-1] == (201, "committed")

        # B's treasurer suspends: new payments are refused either way; resuming lets them flow
        treasurer_b = ("--node", b.base, "--keystore", str(b.treasurer_keystore), "--password-file", str(b.password_file))
        assert ayni_here("federation", "suspend", alliance_id, *treasurer_b).returncode == 0
        assert pay(a, b, 2, 2, 2).answers[-1] == (422, "alliance_not_active")
        assert pay(b, a, 2, 2, 2).answers[-1] == (422, "alliance_not_active")
        r = ayni_here("federation", "suspend", alliance_id, *treasurer_b)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr  # already suspended
        assert ayni_here("federation", "resume", alliance_id, *treasurer_b).returncode == 0
        assert pay(a, b, 2, 2, 2).answers[-1] == (201, "committed")
        listed = json.loads(ayni_here("federation", "alliances", "--node", a.base, "--json").stdout)
        assert [(x["allianceId"], x["status"]) for x in listed] == [(alliance_id, "active")]

        states = settle([a, b], payments, timeout=30)
        check_books(a, b, payments, states)
        for n in (a, b):
            r = ayni_here("federation", "status", "--db", n.db_url)
            assert r.returncode == 0 and "no remote payment in flight" in r.stdout, r.stdout + r.stderr
    except BaseException:
        print("A:", a.log_tail(), "\nB:", b.log_tail())
        raise
    finally:
        a.close()
        b.close()


@pytest.fixture
def fresh_pg_database(pg_server_url):
    """A PostgreSQL database of this test's own (the session's shared one holds other tests' data)."""
    from sqlalchemy import create_engine, text
    name = f"ayni_fed_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_server_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield pg_server_url.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.postgres
def test_postgres_and_sqlite_nodes_pay_each_other_concurrently_across_a_kill(tmp_path, fresh_pg_database):
    # A: PostgreSQL with two uvicorn workers (each opens the node; only the parent drives)
    a = Node("A", fresh_pg_database, tmp_path / "A", members=6, workers=2)
    b = Node("B", f"sqlite:///{tmp_path}/b.db", tmp_path / "B", members=6)
    try:
        _start([a, b])
        payments: list[Payment] = []
        lock = threading.Lock()

        def client(k: int):
            for r in range(6):
                origin, dest = (a, b) if (k + r) % 2 == 0 else (b, a)
                p = remote_payment(origin, dest, k, (k + r) % 6, 5 + r)
                with lock:
                    payments.append(p)
                for _ in range(20):  # retry the same signed payment until a definite answer
                    status, _code = post(origin, p)
                    if status is not None:
                        break
                    time.sleep(0.3)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        b.kill()
        b.start()
        for t in threads:
            t.join()
        states = settle([a, b], payments, timeout=40)
        assert sum(p.acknowledged for p in payments) >= len(payments) // 2
        check_books(a, b, payments, states)
    except BaseException:
        print("A:", a.log_tail(), "\nB:", b.log_tail())
        raise
    finally:
        a.close()
        b.close()


def test_faults_on_batched_requests_keep_the_books(tmp_path, fresh_pg_database):
    """Review 15 D4: under load the outboxes send batches ({"messages": [...]}), which the
    proxy's per-kind faults used to miss. Here every fault hits batch requests (by "batch", and by
    a kind a batch holds), both ways, with concurrent payers; then the books are checked."""
    a = Node("A", f"sqlite:///{tmp_path}/a.db", tmp_path / "A", members=8, timeout_ms=4000)
    b = Node("B", fresh_pg_database, tmp_path / "B", members=8, timeout_ms=4000)
    try:
        _start([a, b])
        for proxy in (a.proxy, b.proxy):
            proxy.fault("batch", "lose_request", times=2)
            proxy.fault("batch", "lose_reply", times=2)
            proxy.fault("batch", "duplicate", times=2)
            proxy.fault("batch", "delay", times=2, seconds=1.0)
            proxy.fault("commit", "lose_reply", times=2)  # a batch holding a COMMIT, or a lone one
        prepares_hooked = []
        b.proxy.on("prepare", lambda: prepares_hooked.append(1), times=10_000)
        payments: list[Payment] = []
        lock, stop = threading.Lock(), threading.Event()

        def client(k: int):
            r = 0
            with httpx.Client() as c:
                while not stop.is_set():
                    origin, dest = (a, b) if (k + r) % 2 == 0 else (b, a)
                    p = remote_payment(origin, dest, k, (k + r) % 8, 1 + r % 5)
                    r += 1
                    with lock:
                        payments.append(p)
                    for _ in range(5):
                        if post(origin, p, c, timeout=15)[0] is not None:
                            break

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        faults_left = lambda: sum(f[2] for p in (a.proxy, b.proxy) for f in p._faults)
        _wait_for("every fault on a batch request", lambda: faults_left() == 0, 30)
        stop.set()
        for t in threads:
            t.join()
        assert a.proxy.seen["batch"] > 0 and b.proxy.seen["batch"] > 0
        # hooks run per message inside batches too: one per PREPARE forwarded to B (not the lost ones)
        assert b.proxy.seen_in_batch["prepare"] > 0
        assert b.proxy.seen["prepare"] - 2 * 64 <= len(prepares_hooked) <= b.proxy.seen["prepare"]
        assert len(prepares_hooked) > b.proxy.seen["prepare"] - b.proxy.seen_in_batch["prepare"]
        states = settle([a, b], payments, timeout=40)
        assert sum(p.acknowledged for p in payments) > 0
        check_books(a, b, payments, states)
    except BaseException:
        print("A:", a.log_tail(), "\nB:", b.log_tail())
        raise
    finally:
        a.close()
        b.close()
