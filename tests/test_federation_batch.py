"""Batching between federation nodes (docs/federation.md, "Throughput"): node messages to a peer
travel together in one request {"messages": [...]} handled in one transaction, with one result
per message (a refused message refuses only itself); payers' prepared entries are
group-committed. Two REAL ledgers (SQLite + SQLite, PostgreSQL + SQLite), the HTTP endpoint
through FastAPI's TestClient, the batched transport between the two nodes in-process."""
from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from api.app import Settings, create_app
from ledger.core import errors as E
from ledger.core.federation import NodeMessage, RemoteTransfer, sign_node_message
from ledger.core.typed_data import recover_signer, sign_digest
from ledger.federation.driver import (
    Transport,
    TransportError,
    send_payment_now,
    wire_payment_id,
)
from ledger.federation.node import MAX_BATCH
from ledger.federation.runtime import Federation

from .test_federation_ledger import Clock, Side, _check_quiescent, ally, remote

A_URL, B_URL = "http://a.example:8000", "http://b.example:8000"


@pytest.fixture
def pair(db_url, tmp_path):
    """Two ledgers (A on SQLite or PostgreSQL, B on SQLite), three members each (as in
    tests/test_federation_ledger.py)."""
    clock = Clock()
    a = Side(db_url, "Coop A", clock)
    b = Side(f"sqlite:///{tmp_path}/b.db", "Coop B", clock)
    for s in (a, b):
        for n in ("ana", "bea", "cho"):
            s.c.member(n)
    yield a, b, clock
    for s in (a, b):
        s.ledger.close()


def _prepares(a, b, n: int) -> list[dict]:
    """n payments submitted at A (durable), their PREPAREs not yet sent."""
    names = ("ana", "bea", "cho")
    out = []
    for i in range(n):
        submitted = a.node.submit(*remote(a, names[i % 3], b, names[(i + 1) % 3], 5 + i))
        ((url, wire),) = submitted["outbox"]
        assert url == B_URL and submitted["state"] == "prepared"
        out.append(wire)
    return out


def _log_kinds(side) -> list[str]:
    return [e.kind for e in side.ledger.iter_entries()]


def test_a_batch_over_http_gets_one_result_per_message_and_a_refused_one_refuses_only_itself(pair, tmp_path):
    a, b, _ = pair
    ally(a, b)
    p1, p2, p3 = _prepares(a, b, 3)
    forged = {**p2, "signature": sign_digest(b"\x07" * 32, b"\x01" * 32)}  # not A's node key
    before = len(_log_kinds(b))
    app = create_app(b.ledger, Settings(db_url=b.url, secret_file=str(tmp_path / "session.key")),
                     federation=Federation(b.node, Transport(b.node), B_URL))
    with TestClient(app) as client:
        r = client.post("/v1/federation/messages", json={"messages": [p1, forged, p3, p1]})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["message"]["kind"] if x and "message" in x else x["error"]["code"] for x in results] == [
            "prepared", "wrong_node_signature", "prepared", "stale_node_message"]  # p1 again: a duplicate
        # only the two good PREPAREs were written, each its own entry
        assert _log_kinds(b)[before:] == ["remote.prepared", "remote.prepared"]
        votes = [results[0], results[2]]
        # the refused one is sent again, alone: the plain form, answered with its own status
        r = client.post("/v1/federation/messages", json=p2)
        assert r.status_code == 200 and r.json()["message"]["kind"] == "prepared", r.text
        votes.append(r.json())
        # the votes at A in one batch: one COMMIT each; the COMMITs back to B in one request
        commits = a.node.receive({"messages": votes})["results"]
        assert [c["message"]["kind"] for c in commits] == ["commit"] * 3
        r = client.post("/v1/federation/messages", json={"messages": commits})
        acks = r.json()["results"]
        assert r.status_code == 200 and [x["message"]["kind"] for x in acks] == ["ack"] * 3
        assert a.node.receive({"messages": acks}) == {"results": [None, None, None]}
        for bad in ({"messages": []}, {"messages": "p1"}, {"messages": [p1] * (MAX_BATCH + 1)}):
            r = client.post("/v1/federation/messages", json=bad)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input", r.text
    pids = ["0x" + w["message"]["paymentId"][2:] for w in (p1, p2, p3)]
    assert all(a.node.payment(p)["state"] == b.node.payment(p)["state"] == "committed" for p in pids)
    _check_quiescent(a, b, set(pids))


def test_a_refused_payer_in_a_group_commit_does_not_refuse_the_others(pair):
    a, b, _ = pair
    ally(a, b)
    good1, good2 = remote(a, "ana", b, "bea", 7), remote(a, "bea", b, "cho", 8)
    too_much = remote(a, "cho", b, "ana", 10**12)
    items = [a.node._checked_transfer(*x) for x in (good1, too_much, good2, good1)]
    before = len(_log_kinds(a))
    results = a.node._submit_batch(items)
    assert isinstance(results[1], E.LedgerError) and results[1].code == "credit_limit_exceeded"
    assert results[0][0]["state"] == results[2][0]["state"] == "prepared"
    assert len(results[0][2]) == 1 == len(results[2][2])          # a PREPARE to send for each
    assert results[3][0]["paymentId"] == results[0][0]["paymentId"] and results[3][2] == []  # the same one again
    assert _log_kinds(a)[before:] == ["remote.prepared", "remote.prepared"]


def _signed(a, b, payer: str, payee: str, amount: int, nonce: int) -> tuple:
    t = RemoteTransfer.create(payer=a.c.addr(payer), payee_community=b.community, payee=b.c.addr(payee),
                              currency="HOUR", amount=amount, payee_currency="HOUR", delivered=amount, nonce=nonce,
                              valid_until=4_000_000_000)
    return t.message(), sign_digest(a.c.keys[payer], a.c.domain.digest(t.struct_hash()))


def test_concurrent_payers_share_requests_and_every_payment_commits_on_both_sides(pair):
    """Payers in threads through the batched transport: while the one request in flight to B is
    held up, the others' PREPAREs queue and leave together; every payment commits on both sides."""
    a, b, _ = pair
    ally(a, b)
    nodes = {A_URL: a.node, B_URL: b.node}
    sizes, gate = [], threading.Event()
    lock = threading.Lock()

    def send(base_url: str, path: str, body: dict):
        with lock:
            sizes.append(len(body["messages"]) if "messages" in body else 1)
            first = len(sizes) == 1
        if first:
            gate.wait(5)  # the first request waits until every payer has queued its PREPARE
        return nodes[base_url].receive(body)

    transport = Transport(a.node, send, senders_per_peer=1)
    names, n = ("ana", "bea", "cho"), 12
    bodies = [_signed(a, b, names[i % 3], names[(i + 2) % 3], 1 + i, time.time_ns() + i) for i in range(n)]
    legs, errors = [None] * n, []

    def payer(i: int):
        try:
            legs[i] = send_payment_now(transport, a.node.submit(*bodies[i]), wait_s=10)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=payer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while sum(1 for leg in a.node.pending()) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the payers are waiting on their PREPAREs now
    gate.set()
    for t in threads:
        t.join(15)
    assert not errors, errors
    assert [leg["state"] for leg in legs] == ["committed"] * n
    assert max(sizes) > 1, sizes  # PREPAREs (or COMMITs) shared a request
    deadline = time.monotonic() + 10
    while b.node.pending() and time.monotonic() < deadline:  # B's COMMITs follow in the background
        time.sleep(0.02)
    pids = {leg["paymentId"] for leg in legs}
    assert all(b.node.payment(p)["state"] == "committed" for p in pids)
    _check_quiescent(a, b, pids)


def test_a_peer_that_refuses_the_batch_form_gets_the_messages_one_by_one(pair):
    """A peer that reads one message per request (an older node) answers the batch with a 400:
    the transport sends each message alone, and each gets its own answer."""
    a, b, _ = pair
    ally(a, b)
    prepares = _prepares(a, b, 3)

    def old_peer(base_url: str, path: str, body: dict):
        if "messages" in body:
            raise TransportError("HTTP 400 invalid_input", status=400, code="invalid_input")
        return b.node.handle(body)

    transport = Transport(a.node, old_peer)
    answers = transport._exchange(B_URL, [(w, 0) for w in prepares])
    assert [x["message"]["kind"] for x in answers] == ["commit"] * 3
    def down(*_):
        raise TransportError("connection refused")

    with pytest.raises(TransportError):  # a peer that is down: the sender hears it, nothing else changes
        Transport(a.node, down).post(B_URL, _prepares(a, b, 1)[0]).result(5)


def test_the_node_signs_as_sign_node_message_and_a_bad_signature_is_refused_every_time(pair):
    """The node keeps its key object for signing (faster): the same RFC 6979 signature as the
    core's sign_node_message. Signer recovery is cached: a signature that recovers to no key
    is refused each time it comes, never remembered as anything."""
    a, b, _ = pair
    terms = ally(a, b)
    nm = NodeMessage.create(alliance_id=terms.alliance_id, payment_id=b"\x05" * 32, kind="ack", at=a.clock())
    assert a.node._sign(nm)["signature"] == sign_node_message(a.node_key, a.c.domain, nm)
    # r = 5 is in range but no curve point has x = 5: nothing to recover
    unrecoverable = "0x" + (5).to_bytes(32, "big").hex() + (1).to_bytes(32, "big").hex() + "1b"
    for _ in range(2):
        with pytest.raises(E.BadSignature, match="does not recover"):
            recover_signer(b"\x01" * 32, unrecoverable)


def test_the_combiner_runner_returns_once_its_own_item_is_done_and_a_waiting_caller_runs_the_rest():
    """Review 15 D3: the caller running batches used to drain the queue until empty, so under
    closed-loop load from others it could work for them for ever. Now it returns after its own
    item, and the item queued meanwhile is run by its own caller."""
    from ledger.federation.batching import Combiner
    ran_by: dict = {}
    second_queued = threading.Event()

    def process(items):
        for item in items:
            ran_by[item] = threading.current_thread().name
        if items == [1]:  # while the first batch runs, a second caller queues its item
            threading.Thread(target=lambda: results.append(c.run(2, timeout=10)), name="second").start()
            deadline = time.monotonic() + 5
            while len(c._queue) == 0 and time.monotonic() < deadline:
                time.sleep(0.001)
            second_queued.set()
        return [item * 10 for item in items]

    c, results = Combiner(process, max_batch=1), []
    threading.current_thread().name = "first"
    try:
        assert c.run(1, timeout=10) == 10
    finally:
        threading.current_thread().name = "MainThread"
    assert second_queued.is_set()
    deadline = time.monotonic() + 5
    while not results and time.monotonic() < deadline:
        time.sleep(0.001)
    assert results == [20]
    assert ran_by == {1: "first", 2: "second"}  # the first caller did not run the second's batch


def test_a_combiner_item_not_run_in_time_is_dropped_and_never_run_later():
    from concurrent.futures import TimeoutError as FutureTimeout

    from ledger.federation.batching import Combiner
    release, ran = threading.Event(), []

    def process(items):
        ran.extend(items)
        if items == ["slow"]:
            release.wait(5)
        return items

    c = Combiner(process, max_batch=1)
    t = threading.Thread(target=c.run, args=("slow",), kwargs={"timeout": 10})
    t.start()
    while not ran:
        time.sleep(0.001)
    with pytest.raises(FutureTimeout):
        c.run("late", timeout=0.05)
    release.set()
    t.join(5)
    assert c.run("next", timeout=5) == "next"
    assert ran == ["slow", "next"]


def test_a_re_post_of_a_prepared_transfer_sends_its_own_prepare_and_leaves_the_others_due(pair):
    """Review 15 D2: a re-POST of a still-prepared transfer sends that payment's due PREPARE
    and only that one; another payment's re-send stays due for the driver's next round (it used
    to be taken as sent by the re-POST's full due() and wait one retry interval more)."""
    a, b, clock = pair
    ally(a, b)
    sent: list = []

    def send(url, path, body):  # the peer does not answer (slow, say): what left is recorded
        sent.append(wire_payment_id(body))

    tr = Transport(a.node, send)
    p1 = a.node.submit(*remote(a, "ana", b, "bea", 5))
    p2 = a.node.submit(*remote(a, "bea", b, "cho", 5))
    assert p1["state"] == p2["state"] == "prepared"
    clock.now += a.node.retry_ms + 500  # both PREPAREs are due for a re-send
    tr.send_due(payment_id=p1["paymentId"])  # what the re-POST of P1's signed body runs
    assert sent == [p1["paymentId"].lower()]
    sent.clear()
    tr.send_due()  # the driver's round right after: P2's re-send is still due, P1's is not
    assert sent == [p2["paymentId"].lower()]
    sent.clear()
    tr.send_due(payment_id=p1["paymentId"])  # again at once: nothing is due for P1
    assert sent == []
