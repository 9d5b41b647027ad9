"""Shops over HTTP (api/routers/shops.py, docs/shops.md) on SQLite and PostgreSQL: the public
profile, open till requests paid once, checkouts from the standing code, name consent and its
access log, mixed payments, refunds with the link both ways, the live feed (cursor, SSE) under
concurrent payments, and the takings report equal to the ledger."""
from __future__ import annotations

import threading

import pytest

from api.routers import shops as shops_router
from ledger import signing

from .test_api import Api

transfer_body = signing.transfer_json


@pytest.fixture
def api(db_url, tmp_path):
    a = Api(db_url, tmp_path)
    for n in ("ana", "bea", "cai"):
        a.c.member(n)
    a.c.member("shop", role="shop")
    yield a
    a.client.close()
    a.c.dispose()


def err(r, status, code):
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text


def ok(r, status=200):
    assert r.status_code == status, r.text
    return r.json()


def publish(api, **extra):
    body = {"name": "Panadería La Espiga", "postalAddress": "Calle Mayor 3", "openingHours": "Mon-Sat 8-14",
            "creditShareBp": 3000, **extra}
    return ok(api.client.put(f"/v1/shops/{api.c.addr('shop')}/profile", json=body, headers=api.h("shop")))


def pay(api, who, r, amount=None):
    sub = api.c.pay(who, "shop", r["amount"] if amount is None else amount, currency=r["currency"],
                    request_id=bytes.fromhex(r["id"][2:]))
    return api.client.post("/v1/transfers", json=transfer_body(sub))


def sale(api, amount, **extra):
    return ok(api.client.post("/v1/requests", json={"currency": "CRED", "amount": amount, **extra},
                              headers=api.h("shop")), 201)


def test_profile_publish_unpublish_and_who_may_set_it(api):
    shop = api.c.addr("shop")
    err(api.client.get(f"/v1/shops/{shop}"), 404, "not_found")
    p = publish(api)
    assert p == {"address": shop, "name": "Panadería La Espiga", "postalAddress": "Calle Mayor 3",
                 "openingHours": "Mon-Sat 8-14", "creditShareBp": 3000, "published": True}
    assert ok(api.client.get(f"/v1/shops/{shop}")) == p  # public: no sign-in needed
    err(api.client.put(f"/v1/shops/{shop}/profile", json={"name": "x"}, headers=api.h("ana")), 403, "forbidden")
    err(api.client.put(f"/v1/shops/{api.c.addr('ana')}/profile", json={"name": "Ana's"}, headers=api.h("ana")),
        403, "not_authorised")  # a member account is not a shop
    err(api.client.put(f"/v1/shops/{shop}/profile", json={"name": "La\u200bEspiga"}, headers=api.h("shop")),
        400, "invalid_input")
    err(api.client.put(f"/v1/shops/{shop}/profile", json={"name": "x", "creditShareBp": 10001},
                       headers=api.h("shop")), 422, "invalid_input")
    assert ok(api.client.post(f"/v1/shops/{shop}/profile/unpublish", headers=api.h("shop")))["published"] is False
    err(api.client.get(f"/v1/shops/{shop}"), 404, "not_found")
    assert ok(api.client.get(f"/v1/shops/{shop}", headers=api.h("shop")))["published"] is False  # the shop sees it
    assert ok(api.client.delete(f"/v1/shops/{shop}/profile", headers=api.h("shop"))) == {"erased": 1}
    err(api.client.get(f"/v1/shops/{shop}", headers=api.h("shop")), 404, "not_found")
    # the shop's erasure request (ayni erase / retention.erase_member) erases its profile too
    from ledger.privacy.retention import erase_member
    publish(api)
    assert erase_member(api.c.ledger, shop).profiles == 1
    err(api.client.get(f"/v1/shops/{shop}"), 404, "not_found")
    policy = ok(api.client.get("/v1/data-policy"))
    ids = {i["id"] for i in policy["items"]}
    assert {"shop_profile", "shop_till_data", "shop_name_consents", "refund_intents", "refund_links"} <= ids
    assert {"shop_directory", "shop_customer_name"} <= {p["id"] for p in policy["purposes"]}


def test_open_request_is_paid_once_by_whoever_pays_first(api):
    r = sale(api, 450, till="Till 1")
    assert r["payer"] is None and r["open"] and r["till"] == "Till 1" and r["status"] == "open"
    seen = ok(api.client.get(f"/v1/requests/{r['id']}", headers=api.h("bea")))  # anyone with the link
    assert seen["amount"] == 450 and seen["memo"] is None
    first = pay(api, "ana", r)
    assert first.status_code == 201, first.text
    err(pay(api, "bea", r), 409, "request_not_open")
    done = ok(api.client.get(f"/v1/requests/{r['id']}", headers=api.h("ana")))
    assert done["status"] == "paid" and done["paidBy"] == api.c.addr("ana") and done["paidSeq"] == first.json()["seq"]
    err(api.client.get(f"/v1/requests/{r['id']}", headers=api.h("bea")), 403, "forbidden")
    assert api.c.balance("ana", "CRED") == -450 and api.c.balance("bea", "CRED") == 0
    # an open request has nobody to decline it
    err(api.client.post(f"/v1/requests/{sale(api, 5)['id']}/decline", headers=api.h("ana")), 409, "invalid_transition")
    # only a shop makes open requests: a member names the payer
    err(api.client.post("/v1/requests", json={"currency": "CRED", "amount": 5, "till": "x"}, headers=api.h("ana")),
        403, "not_authorised")
    named = {"currency": "CRED", "amount": 5, "payer": api.c.addr("bea")}
    assert ok(api.client.post("/v1/requests", json=named, headers=api.h("ana")), 201)["open"] is False


def test_open_request_raced_by_many_payers_is_paid_once(api):
    r = sale(api, 100)
    names = ["ana", "bea", "cai"] * 3
    subs = [api.c.pay(n, "shop", 100, currency="CRED", request_id=bytes.fromhex(r["id"][2:])) for n in names]
    codes: list = [None] * len(subs)
    go = threading.Barrier(len(subs))

    def run(i):
        go.wait()
        codes[i] = api.client.post("/v1/transfers", json=transfer_body(subs[i])).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(subs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [201] + [409] * (len(subs) - 1), codes
    assert api.c.balance("shop", "CRED") == 100


def test_till_labels_and_mixed_payments(api):
    err(api.client.post("/v1/requests", json={"currency": "CRED", "amount": 5, "till": "Till\u2060 1"},
                        headers=api.h("shop")), 400, "invalid_input")
    err(api.client.post("/v1/requests", json={"currency": "CRED", "amount": 5, "till": "x" * 33},
                        headers=api.h("shop")), 400, "invalid_input")
    m = sale(api, None, totalMinor=999, creditShareBp=3333)
    assert m["amount"] == 332 and m["mixed"] == {"totalMinor": 999, "creditShareBp": 3333, "creditMinor": 332}
    err(api.client.post("/v1/requests", json={"currency": "CRED", "amount": 333, "totalMinor": 999,
                                              "creditShareBp": 3333}, headers=api.h("shop")), 400, "invalid_input")
    err(api.client.post("/v1/requests", json={"currency": "CRED", "totalMinor": 3, "creditShareBp": 3000},
                        headers=api.h("shop")), 400, "invalid_input")  # the credit part would be 0
    err(api.client.post("/v1/requests", json={"currency": "CRED", "totalMinor": 1000},
                        headers=api.h("shop")), 400, "invalid_input")  # no share given, none on the profile
    publish(api)
    assert sale(api, None, totalMinor=1000)["mixed"] == {"totalMinor": 1000, "creditShareBp": 3000, "creditMinor": 300}
    assert pay(api, "ana", m).status_code == 201
    feed = ok(api.client.get(f"/v1/shops/{api.c.addr('shop')}/takings/feed", headers=api.h("shop")))["items"]
    assert feed[-1]["mixed"]["totalMinor"] == 999 and feed[-1]["amount"] == 332  # only the credit part moved


def test_checkout_with_name_consent_and_the_access_log(api):
    shop = api.c.addr("shop")
    body = {"currency": "CRED", "amount": 250, "till": "Front", "shareName": True}
    err(api.client.post(f"/v1/shops/{shop}/checkouts", json=body, headers=api.h("ana")), 404, "not_found")
    err(api.client.post(f"/v1/shops/{api.c.addr('bea')}/checkouts", json=body, headers=api.h("ana")), 404, "not_found")
    publish(api)
    api.c.ledger.set_profile(api.c.addr("ana"), display_name="Ana Q.")
    api.c.ledger.set_profile(api.c.addr("bea"), display_name="Bea R.")
    err(api.client.post(f"/v1/shops/{shop}/checkouts", json=body, headers=api.h("ana")), 422, "request_mismatch")
    sale(api, 5, till="Front")  # the shop's till uses "Front": its standing code may carry it
    r = ok(api.client.post(f"/v1/shops/{shop}/checkouts", json=body, headers=api.h("ana")), 201)
    assert r["payer"] == api.c.addr("ana") and r["payee"] == shop and r["shareName"] and r["till"] == "Front"
    assert r["checkout"] is True
    assert pay(api, "ana", r).status_code == 201
    # bea pays without consent; cai consents on an open request before paying
    r2 = ok(api.client.post(f"/v1/shops/{shop}/checkouts", json={**body, "shareName": False}, headers=api.h("bea")), 201)
    assert pay(api, "bea", r2).status_code == 201
    r3 = sale(api, 70)
    err(api.client.post(f"/v1/requests/{r2['id']}/share-name", headers=api.h("cai")), 403, "forbidden")
    ok(api.client.post(f"/v1/requests/{r3['id']}/share-name", headers=api.h("cai")))
    assert pay(api, "cai", r3).status_code == 201  # cai has no display name: a reference only
    items = ok(api.client.get(f"/v1/shops/{shop}/takings/feed", headers=api.h("shop")))["items"]
    assert [i.get("customerName") for i in items] == ["Ana Q.", None, None]
    assert all(len(i["reference"]) == 8 for i in items) and [i["till"] for i in items] == ["Front", "Front", None]
    log = ok(api.client.get(f"/v1/accounts/{api.c.addr('ana')}/access-log", headers=api.h("ana")))["items"]
    assert [(e["accessor"], e["purpose"], e["categories"]) for e in log] == [(shop, "shop_customer_name", ["profile"])]
    assert ok(api.client.get(f"/v1/accounts/{api.c.addr('bea')}/access-log", headers=api.h("bea")))["items"] == []
    err(api.client.get(f"/v1/shops/{shop}/takings/feed", headers=api.h("ana")), 403, "forbidden")
    # consent comes before paying
    err(api.client.post(f"/v1/requests/{r['id']}/share-name", headers=api.h("ana")), 409, "request_not_open")


def test_checkout_uses_the_shops_declared_share_and_till_labels(api):
    """A checkout is written by the customer but filed as the shop's: the mixed share is the
    profile's (another is refused, none declared refuses a mixed checkout), and its till label
    must be one the shop's till has used."""
    shop = api.c.addr("shop")
    publish(api, creditShareBp=None)
    mixed = {"currency": "CRED", "totalMinor": 100000}
    err(api.client.post(f"/v1/shops/{shop}/checkouts", json=mixed, headers=api.h("ana")), 422, "request_mismatch")
    publish(api)  # 3000 bp
    r = api.client.post(f"/v1/shops/{shop}/checkouts", json={**mixed, "creditShareBp": 1}, headers=api.h("ana"))
    err(r, 422, "request_mismatch")
    assert "3000" in r.json()["error"]["message"]
    r = ok(api.client.post(f"/v1/shops/{shop}/checkouts", json=mixed, headers=api.h("ana")), 201)
    assert r["amount"] == 30000 and r["mixed"] == {"totalMinor": 100000, "creditShareBp": 3000, "creditMinor": 30000}
    ok(api.client.post(f"/v1/shops/{shop}/checkouts", json={**mixed, "creditShareBp": 3000}, headers=api.h("ana")), 201)
    free = {"currency": "CRED", "amount": 100, "till": "Anything"}
    err(api.client.post(f"/v1/shops/{shop}/checkouts", json=free, headers=api.h("ana")), 422, "request_mismatch")
    sale(api, 5, till="Anything")
    assert ok(api.client.post(f"/v1/shops/{shop}/checkouts", json=free, headers=api.h("ana")), 201)["till"] == "Anything"


def test_refunds_over_http_link_both_ways(api):
    shop = api.c.addr("shop")
    r = sale(api, 1000, till="Till 2")
    seq = pay(api, "ana", r).json()["seq"]
    err(api.client.post(f"/v1/transfers/{seq}/refunds", json={"amount": 100}, headers=api.h("bea")), 403,
        "not_authorised")
    err(api.client.post(f"/v1/transfers/{seq}/refunds", json={"amount": 1001}, headers=api.h("shop")), 409,
        "refund_exceeds_remaining")
    err(api.client.post("/v1/transfers/999999/refunds", json={"amount": 1}, headers=api.h("shop")), 404, "not_found")
    intent = ok(api.client.post(f"/v1/transfers/{seq}/refunds", json={"amount": 400}, headers=api.h("shop")), 201)
    assert intent["payer"] == shop and intent["payee"] == api.c.addr("ana") and intent["refundableRemaining"] == 1000
    sub = signing.transfer(api.c.keys["shop"], api.c.domain, payee=intent["payee"], currency="CRED", amount=400,
                           request_id=bytes.fromhex(intent["refundId"][2:]))
    posted = ok(api.client.post("/v1/transfers", json=transfer_body(sub)), 201)
    one = ok(api.client.get(f"/v1/transfers/{seq}", headers=api.h("ana")))
    assert one["refunds"] == [{"seq": posted["seq"], "amount": 400}] and one["refundableRemaining"] == 600
    assert ok(api.client.get(f"/v1/transfers/{posted['seq']}", headers=api.h("shop")))["refundOf"] == seq
    hist = {i["seq"]: i for i in ok(api.client.get(f"/v1/accounts/{api.c.addr('ana')}/history",
                                                   headers=api.h("ana")))["items"]}
    assert hist[posted["seq"]]["refundOf"] == seq and hist[seq]["refunds"][0]["seq"] == posted["seq"]
    # two prepared refunds that only fit one at a time: the second posting is refused, nothing written
    a = ok(api.client.post(f"/v1/transfers/{seq}/refunds", json={"amount": 500}, headers=api.h("shop")), 201)
    b = ok(api.client.post(f"/v1/transfers/{seq}/refunds", json={"amount": 500}, headers=api.h("shop")), 201)
    sa, sb = (signing.transfer(api.c.keys["shop"], api.c.domain, payee=x["payee"], currency="CRED", amount=500,
                               request_id=bytes.fromhex(x["refundId"][2:])) for x in (a, b))
    assert api.client.post("/v1/transfers", json=transfer_body(sa)).status_code == 201
    err(api.client.post("/v1/transfers", json=transfer_body(sb)), 409, "refund_exceeds_remaining")
    err(api.client.post(f"/v1/transfers/{posted['seq']}/refunds", json={"amount": 1}, headers=api.h("ana")), 409,
        "not_refundable")  # a refund of a refund
    items = ok(api.client.get(f"/v1/shops/{shop}/takings/feed", headers=api.h("shop")))["items"]
    assert [(i["kind"], i["amount"], i["till"], i.get("refundOf")) for i in items] == [
        ("payment", 1000, "Till 2", None), ("refund", 400, "Till 2", seq), ("refund", 500, "Till 2", seq)]
    assert api.c.ledger.verify().ok


def test_refund_in_another_currency_is_a_refund_mismatch_and_huge_numbers_are_client_errors(api):
    shop = api.c.addr("shop")
    r = sale(api, 1000)
    seq = pay(api, "ana", r).json()["seq"]
    intent = ok(api.client.post(f"/v1/transfers/{seq}/refunds", json={"amount": 400}, headers=api.h("shop")), 201)
    # the shop has no HOUR to give: the refund rule answers first, naming what is wrong
    sub = signing.transfer(api.c.keys["shop"], api.c.domain, payee=intent["payee"], currency="HOUR", amount=400,
                           request_id=bytes.fromhex(intent["refundId"][2:]))
    r = api.client.post("/v1/transfers", json=transfer_body(sub))
    err(r, 422, "refund_mismatch")
    assert "CRED" in r.json()["error"]["message"]
    huge = "9" * 19  # > 2^63-1: a client mistake (400), never a database error
    for path in (f"/v1/shops/{shop}/takings/feed?after={huge}", f"/v1/shops/{shop}/takings/stream?after={huge}",
                 f"/v1/transfers/{huge}"):
        err(api.client.get(path, headers=api.h("shop")), 400, "invalid_input")
    err(api.client.post(f"/v1/transfers/{huge}/refunds", json={"amount": 1}, headers=api.h("shop")), 400,
        "invalid_input")
    assert ok(api.client.get(f"/v1/shops/{shop}/takings/feed?after={2**63 - 1}", headers=api.h("shop")))["items"] == []


def test_feed_cursor_neither_repeats_nor_misses_under_concurrent_payments(api):
    shop = api.c.addr("shop")
    n_per, payers = 8, ["ana", "bea", "cai"]
    seen: list[int] = []
    done = threading.Event()

    def reader():
        cursor = None
        while True:
            finished = done.is_set()
            q = f"?limit=3&after={cursor}" if cursor else "?limit=3"
            page = ok(api.client.get(f"/v1/shops/{shop}/takings/feed{q}", headers=api.h("shop")))
            seen.extend(i["seq"] for i in page["items"])
            cursor = page["nextCursor"]  # a reconnect is just the next request with the cursor
            if finished and not page["items"]:
                return

    def payer(name):
        for k in range(n_per):
            r = sale(api, 10 + k)
            assert pay(api, name, r).status_code == 201

    api.h("shop")
    t_read = threading.Thread(target=reader)
    t_read.start()
    writers = [threading.Thread(target=payer, args=(n,)) for n in payers]
    for t in writers:
        t.start()
    for t in writers:
        t.join(120)
    done.set()
    t_read.join(120)
    paid = [i.seq for i in api.c.ledger.iter_entries() if i.kind == "transfer.posted" and i.body["payee"] == shop]
    assert len(paid) == n_per * len(payers)
    assert seen == sorted(paid)  # every payment once, in order


def test_at_most_four_live_streams_per_shop(api, monkeypatch):
    """Each stream polls the database every second: a fifth one for the same shop is 429, and a
    slot comes back when a stream ends."""
    import time
    monkeypatch.setattr(shops_router, "STREAM_MAX_S", 2.0)
    monkeypatch.setattr(shops_router, "STREAM_POLL_S", 0.1)
    shop = api.c.addr("shop")
    url = f"/v1/shops/{shop}/takings/stream"
    headers = api.h("shop")
    codes: list[int] = []

    def hold():
        with api.client.stream("GET", url, headers=headers) as r:
            codes.append(r.status_code)
            for _ in r.iter_lines():
                pass
    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while shops_router._streams[shop] < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    r = api.client.get(url, headers=headers)
    err(r, 429, "rate_limited")
    assert "at most 4" in r.json()["error"]["message"]
    for t in threads:
        t.join(timeout=20)
    assert codes == [200] * 4 and shops_router._streams[shop] == 0
    with api.client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200


def test_sse_stream_resumes_from_last_event_id(api, monkeypatch):
    monkeypatch.setattr(shops_router, "STREAM_MAX_S", 0.5)
    monkeypatch.setattr(shops_router, "STREAM_POLL_S", 0.1)
    shop = api.c.addr("shop")
    seqs = [pay(api, "ana", sale(api, 5 + k)).json()["seq"] for k in range(3)]

    def events(headers):
        with api.client.stream("GET", f"/v1/shops/{shop}/takings/stream", headers={**api.h("shop"), **headers}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            return [int(line[4:]) for line in r.iter_lines() if line.startswith("id: ")]

    assert events({}) == seqs
    assert events({"Last-Event-ID": str(seqs[0])}) == seqs[1:]
    more = pay(api, "bea", sale(api, 9)).json()["seq"]
    assert events({"Last-Event-ID": str(seqs[-1])}) == [more]
    err(api.client.get(f"/v1/shops/{shop}/takings/stream?after=x1", headers=api.h("shop")), 400, "invalid_input")


def test_takings_report_equals_the_ledger_under_concurrent_payments(api):
    shop = api.c.addr("shop")
    tills = ["Till 1", "Till 2", None]

    def payer(name, till):
        for k in range(6):
            r = sale(api, 100 + k, **({"till": till} if till else {}))
            assert pay(api, name, r).status_code == 201

    threads = [threading.Thread(target=payer, args=(n, t)) for n, t in zip(["ana", "bea", "cai"], tills, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    first = next(i for i in api.c.ledger.iter_entries() if i.kind == "transfer.posted" and i.body["payee"] == shop)
    intent = ok(api.client.post(f"/v1/transfers/{first.seq}/refunds", json={"amount": 50}, headers=api.h("shop")), 201)
    sub = signing.transfer(api.c.keys["shop"], api.c.domain, payee=intent["payee"], currency="CRED", amount=50,
                           request_id=bytes.fromhex(intent["refundId"][2:]))
    ok(api.client.post("/v1/transfers", json=transfer_body(sub)), 201)
    from datetime import datetime, timezone
    today = datetime.now(timezone.utc).date().isoformat()
    rep = ok(api.client.get(f"/v1/shops/{shop}/takings?from={today}&to={today}", headers=api.h("shop")))
    total = rep["totals"][0]
    # the ledger's own figure: the shop received only these payments and made only this refund
    assert total == {"currency": "CRED", "count": 18, "sum": 3 * sum(100 + k for k in range(6)), "refunds": 50,
                     "net": api.c.balance("shop", "CRED")}
    assert sorted(r["till"] for r in rep["rows"]) == ["", "Till 1", "Till 2"]
    assert sum(r["net"] for r in rep["rows"]) == total["net"]
    one = ok(api.client.get(f"/v1/shops/{shop}/takings?from={today}&to={today}&till=Till%202&period=month",
                            headers=api.h("shop")))
    assert [r["till"] for r in one["rows"]] == ["Till 2"] and one["rows"][0]["period"] == today[:7]
    csv = api.client.get(f"/v1/shops/{shop}/takings?from={today}&to={today}&format=csv", headers=api.h("shop"))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().split("\n")
    assert lines[0] == "period,till,currency,count,sum,refunds,net" and len(lines) == 1 + len(rep["rows"])
    assert sum(int(x.split(",")[-1]) for x in lines[1:]) == total["net"]
    err(api.client.get(f"/v1/shops/{shop}/takings?from=2026-13-01&to={today}", headers=api.h("shop")), 400,
        "invalid_input")
    err(api.client.get(f"/v1/shops/{shop}/takings?from={today}&to={today}", headers=api.h("ana")), 403, "forbidden")
