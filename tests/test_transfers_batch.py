"""POST /v1/transfers/batch over real HTTP (a real `ayni serve`, 2 workers on PostgreSQL): each
transfer gets the result POST /v1/transfers would have given it, in order; a refused one never
holds back the others; re-sending returns the original results; nothing is half-written."""
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from ledger import signing
from ledger.service import Ledger

from .conftest import Community
from .servers import ServerNotReady, free_port, stop_group, wait_ready

BIN = Path(sys.executable).parent
body_of = signing.transfer_json


@pytest.fixture
def served(db_url, tmp_path):
    c = Community(db_url)
    for n in ("ana", "bea", "cid", "dan"):
        c.member(n)
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AYNI_")},
           "AYNI_SESSION_KEY_FILE": str(tmp_path / "session.key")}
    workers = "2" if db_url.startswith("postgresql") else "1"
    proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", db_url, "--port", str(port), "--workers", workers],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
    except ServerNotReady as exc:
        stop_group(proc)
        pytest.fail(f"{exc}: {proc.stderr.read()}")
    with httpx.Client(base_url=base, timeout=60) as http:
        yield c, http
    stop_group(proc)
    c.dispose()


def transfers_in_log(ledger: Ledger) -> dict[str, int]:
    return {e.body["digest"]: e.seq for e in ledger.iter_entries() if e.kind == "transfer.posted"}


def sums_to_zero(ledger: Ledger) -> bool:
    totals: dict[str, int] = {}
    for (_, cur), p in ledger.positions().items():
        totals[cur] = totals.get(cur, 0) + p.balance
    return all(v == 0 for v in totals.values())


def test_mixed_batch_each_transfer_gets_its_own_result_and_a_resend_the_original(served):
    c, http = served
    earlier = c.pay("dan", "ana", 7)
    r = http.post("/v1/transfers", json=body_of(earlier))
    assert r.status_code == 201, r.text
    earlier_seq = r.json()["seq"]

    ok1 = c.pay("ana", "bea", 30, memo="lunch")
    forged = body_of(c.pay("ana", "cid", 5))
    forged["signature"] = body_of(c.pay("bea", "cid", 5))["signature"]  # signed by someone else
    over = c.pay("cid", "bea", 10**9)  # far beyond cid's credit limit
    malformed = body_of(c.pay("bea", "ana", 3))
    malformed["transfer"]["amount"] = 1.5
    reused = c.pay("ana", "dan", 31, nonce=ok1.action.nonce)  # another transfer under ok1's nonce
    ok2 = c.pay("bea", "dan", 12)
    items = [body_of(ok1), forged, body_of(over), body_of(ok1), body_of(earlier), malformed, body_of(reused),
             body_of(ok2)]
    before = c.ledger.head()[0]

    r = http.post("/v1/transfers/batch", json={"transfers": items})
    assert r.status_code == 200, r.text
    got = r.json()
    res = got["results"]
    assert [x["status"] for x in res] == [201, 403, 422, 200, 200, 422, 409, 201]
    assert (res[1]["body"]["error"]["code"], res[2]["body"]["error"]["code"], res[5]["body"]["error"]["code"],
            res[6]["body"]["error"]["code"]) == ("wrong_signer", "credit_limit_exceeded", "invalid_input",
                                                 "nonce_reused")
    assert "amount" in res[5]["body"]["error"]["message"]
    # the duplicate inside the batch and the replay of an earlier one name the original entries
    assert res[3]["body"] == {**res[0]["body"], "duplicate": True}
    assert res[4]["body"]["seq"] == earlier_seq and res[4]["body"]["duplicate"] is True
    assert (got["posted"], got["duplicate"], got["refused"]) == (2, 2, 4)
    # in order: the two new transfers are the next two entries, in the order they were sent
    assert [res[0]["body"]["seq"], res[7]["body"]["seq"]] == [before + 1, before + 2]

    log = transfers_in_log(c.ledger)
    assert log == {res[4]["body"]["digest"]: earlier_seq,
                   res[0]["body"]["digest"]: before + 1, res[7]["body"]["digest"]: before + 2}
    assert c.ledger.memo(before + 1) == "lunch"
    assert c.balance("ana") == 7 - 30 and c.balance("bea") == 30 - 12 and c.balance("cid") == 0
    assert sums_to_zero(c.ledger) and c.ledger.verify().ok

    again = http.post("/v1/transfers/batch", json={"transfers": items})
    assert again.status_code == 200
    res2 = again.json()["results"]
    # posted ones now answer as retries with their original seq; refusals stay refusals
    assert [x["status"] for x in res2] == [200, 403, 422, 200, 200, 422, 409, 200]
    assert res2[0]["body"] == {**res[0]["body"], "duplicate": True}
    assert res2[7]["body"] == {**res[7]["body"], "duplicate": True}
    assert c.ledger.head()[0] == before + 2 and transfers_in_log(c.ledger) == log
    # and the single endpoint agrees with the batch about a transfer the batch posted
    single = http.post("/v1/transfers", json=body_of(ok2))
    assert single.status_code == 200 and single.json() == res2[7]["body"]


def test_two_batches_on_the_same_accounts_at_once(served):
    c, http = served
    names = ["ana", "bea", "cid", "dan"]
    # three members pay mostly dan, far more than their credit allows: the limits refuse some
    batches = [[c.pay(names[(b + i) % 3], names[3] if i % 4 else names[(b + i + 1) % 3], 20 + (i * 37) % 200)
                for i in range(120)] for b in range(2)]
    answers: list = [None, None]

    def send(k):
        with httpx.Client(base_url=str(http.base_url), timeout=60) as h:
            answers[k] = h.post("/v1/transfers/batch", json={"transfers": [body_of(s) for s in batches[k]]})

    threads = [threading.Thread(target=send, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    posted: dict[str, int] = {}
    refused = 0
    for k in range(2):
        assert answers[k].status_code == 200, answers[k].text
        res = answers[k].json()["results"]
        assert len(res) == len(batches[k])
        for sub, x in zip(batches[k], res):
            if x["status"] == 201:
                posted[x["body"]["digest"]] = x["body"]["seq"]
            else:
                assert x["status"] == 422 and x["body"]["error"]["code"] in ("credit_limit_exceeded",
                                                                             "ceiling_exceeded"), x
                refused += 1
    assert posted and refused
    assert transfers_in_log(c.ledger) == posted  # every 201 in the log at its seq, nothing else
    assert sums_to_zero(c.ledger) and c.ledger.verify().ok
    for n in names:  # no balance beyond its limit whatever the interleaving
        p = c.ledger.positions(c.addr(n))[(c.addr(n), "HOUR")]
        assert -p.credit_limit <= p.balance and (p.ceiling is None or p.balance <= p.ceiling)


def test_batch_size_limits(served):
    c, http = served
    one = body_of(c.pay("ana", "bea", 1))
    before = c.ledger.head()
    r = http.post("/v1/transfers/batch", json={"transfers": [one] * 501})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert "at most 500" in r.json()["error"]["message"]
    r = http.post("/v1/transfers/batch", json={"transfers": []})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    big = {"transfers": [{**one, "memo": "x" * 500}] * 2100}  # more bytes than any 500 transfers need
    r = http.post("/v1/transfers/batch", json=big)
    assert r.status_code == 413 and "limited to" in r.json()["error"]["message"]
    assert c.ledger.head() == before  # none of them wrote anything
    # a full batch of 500 goes through, each once
    subs = [c.pay(("ana", "bea")[i % 2], ("bea", "ana")[i % 2], 1) for i in range(500)]
    r = http.post("/v1/transfers/batch", json={"transfers": [body_of(s) for s in subs]})
    assert r.status_code == 200 and r.json()["posted"] == 500
    assert len(transfers_in_log(c.ledger)) == 500 and c.ledger.verify().ok
    spec = http.get("/openapi.json").json()
    assert "/v1/transfers/batch" in spec["paths"]


def test_a_transfer_paying_a_request_in_a_batch_settles_it_once(served):
    from ledger.requests import PaymentRequests
    c, http = served
    reqs = PaymentRequests(c.ledger)
    r = reqs.create(payee=c.addr("bea"), payer=c.addr("ana"), currency="HOUR", amount=45, memo="visit",
                    expires_in_s=3600)
    rid = bytes.fromhex(r.id[2:])
    pays = c.pay("ana", "bea", 45, request_id=rid)
    twice = c.pay("ana", "bea", 45, request_id=rid)  # a second, different payment of the same request
    plain = c.pay("cid", "dan", 5)
    res = http.post("/v1/transfers/batch", json={"transfers": [body_of(pays), body_of(plain), body_of(twice)]})
    assert res.status_code == 200, res.text
    out = res.json()["results"]
    assert [x["status"] for x in out] == [201, 201, 409], out
    assert out[2]["body"]["error"]["code"] == "request_not_open"
    got = reqs.get(r.id)
    assert got.status == "paid" and got.paid_seq == out[0]["body"]["seq"]
    assert c.balance("ana") == -45 and c.ledger.verify().ok


def test_batch_items_take_effect_in_the_order_sent(served):
    """A request payment is not moved behind the plain transfers of its batch: each item gets the
    answer POST /v1/transfers gives when the items are sent one by one, in order (the reviewer's
    t1_equiv case): dan pays an open request with nonce N, then sends a plain transfer under the
    same nonce (refused: nonce used); cid pays the same open request again (refused: already
    paid); every posted item's seq follows the order sent."""
    from ledger.requests import PaymentRequests
    c, http = served
    reqs = PaymentRequests(c.ledger)
    open_req = reqs.create(payee=c.addr("bea"), payer=None, currency="HOUR", amount=5, memo=None, expires_in_s=3600)
    named = reqs.create(payee=c.addr("cid"), payer=c.addr("ana"), currency="HOUR", amount=4, memo=None,
                        expires_in_s=3600)
    rid = bytes.fromhex(open_req.id[2:])
    before = c.pay("ana", "bea", 2)
    pays = c.pay("dan", "bea", 5, request_id=rid)
    same_nonce = c.pay("dan", "ana", 1, nonce=pays.action.nonce)
    pays_named = c.pay("ana", "cid", 4, request_id=bytes.fromhex(named.id[2:]))
    second = c.pay("cid", "bea", 5, request_id=rid)
    after = c.pay("bea", "dan", 1)
    items = [body_of(s) for s in (before, pays, same_nonce, pays_named, second, after)]
    res = http.post("/v1/transfers/batch", json={"transfers": items})
    assert res.status_code == 200, res.text
    out = res.json()["results"]
    assert [x["status"] for x in out] == [201, 201, 409, 201, 409, 201], out
    assert out[2]["body"]["error"]["code"] == "nonce_reused"
    assert out[4]["body"]["error"]["code"] == "request_not_open"
    seqs = [x["body"]["seq"] for x in out if x["status"] == 201]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    got = reqs.get(open_req.id)
    assert got.status == "paid" and got.paid_seq == out[1]["body"]["seq"]  # dan came first, dan paid it
    # the single endpoint, item by item, agrees: the posted ones are retries, the refusals the same
    for item, b in zip(items, out):
        one = http.post("/v1/transfers", json=item)
        if b["status"] == 201:
            assert one.status_code == 200 and one.json()["seq"] == b["body"]["seq"], one.text
        else:
            assert one.status_code == b["status"] and one.json() == b["body"], one.text
    assert c.ledger.verify().ok and sums_to_zero(c.ledger)
