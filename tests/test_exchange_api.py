"""The exchange board over HTTP (api/routers/exchange.py) on SQLite and PostgreSQL: purposes,
who reads what, moderation, the whole path from listing to paid arrangement through
/v1/transfers, errors as codes. docs/exchange.md."""
from __future__ import annotations

import pytest

from ledger import signing

from .test_api import Api

PURPOSE = {"Ayni-Purpose": "exchange"}
CARE = {"kind": "offer", "title": "Elderly care, weekday mornings", "description": "Company, walks",
        "category": "elderly_care", "area": "centro", "currency": "HOUR", "priceUnit": "hour", "price": 60,
        "availability": "weekday mornings", "slots": [{"day": "mon", "from": "09:00", "to": "12:00"}]}
SURGERY = {"kind": "need", "title": "3 h of help after surgery", "description": "12-14 May",
           "category": "errands", "area": "norte", "currency": "HOUR", "priceUnit": "agree", "price": None}


@pytest.fixture
def api(db_url, tmp_path):
    a = Api(db_url, tmp_path)
    for n in ("ana", "bea", "cai"):
        a.c.member(n)
    yield a
    a.client.close()
    a.c.dispose()


def h(api, who, purpose=False):
    return {**api.h(who), **(PURPOSE if purpose else {})}


def post(api, who, body, status=201):
    r = api.client.post("/v1/listings", json=body, headers=h(api, who))
    assert r.status_code == status, r.text
    return r.json()


def err(r, status, code):
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text


def test_config_and_posting(api):
    cfg = api.client.get("/v1/listings/config", headers=h(api, "ana")).json()
    assert {"id": "elderly_care", "label": "Elderly care"} in cfg["categories"] and cfg["orders"] == ["newest", "shuffle"]
    assert cfg["expiryDays"] == {"offer": {"default": 30, "max": 90}, "need": {"default": 7, "max": 90}}
    err(api.client.get("/v1/listings/config"), 401, "unauthenticated")
    o = post(api, "ana", CARE)
    assert o["mine"] and o["author"] == api.c.addr("ana") and o["categoryLabel"] == "Elderly care"
    assert o["slots"] == CARE["slots"] and o["status"] == "active" and o["hidden"] is None
    err(api.client.post("/v1/listings", json={**CARE, "title": "bad\u202etitle"}, headers=h(api, "ana")),
        400, "invalid_input")
    err(api.client.post("/v1/listings", json={**CARE, "price": 60.0}, headers=h(api, "ana")), 422, "invalid_input")
    err(api.client.post("/v1/listings", json={**CARE, "score": 5}, headers=h(api, "ana")), 422, "invalid_input")
    err(api.client.post("/v1/listings", json={**CARE, "expiresInDays": 120}, headers=h(api, "ana")),
        400, "invalid_input")
    err(api.client.post("/v1/listings", json=CARE, headers=h(api, "treasurer")), 403, "not_authorised")


def test_search_needs_the_exchange_purpose_and_hides_the_author(api):
    o = post(api, "ana", CARE)
    post(api, "bea", SURGERY)
    err(api.client.get("/v1/listings", headers=h(api, "cai")), 403, "purpose_required")
    err(api.client.get("/v1/listings?purpose=research", headers=h(api, "cai")), 403, "purpose_not_allowed")
    err(api.client.get("/v1/listings?purpose=nonsense", headers=h(api, "cai")), 403, "purpose_not_allowed")
    r = api.client.get("/v1/listings", headers=h(api, "cai", True))
    assert r.status_code == 200, r.text
    page = r.json()
    assert [i["title"] for i in page["items"]] == [SURGERY["title"], CARE["title"]] and page["order"] == "newest"
    assert all("author" not in i and not i["mine"] for i in page["items"])
    assert api.client.get("/v1/listings?q=walks&kind=offer", headers=h(api, "cai", True)).json()["items"][0]["id"] \
        == o["id"]
    shuffled = api.client.get("/v1/listings?order=shuffle&limit=1", headers=h(api, "cai", True)).json()
    assert len(shuffled["items"]) == 1 and shuffled["nextCursor"] and shuffled["order"] == "shuffle"
    err(api.client.get("/v1/listings?order=rating", headers=h(api, "cai", True)), 422, "invalid_input")
    err(api.client.get("/v1/listings?limit=1.0", headers=h(api, "cai", True)), 422, "invalid_input")
    one = api.client.get(f"/v1/listings/{o['id']}", headers=h(api, "cai", True)).json()
    assert one["title"] == CARE["title"] and "author" not in one
    err(api.client.get(f"/v1/listings/{o['id']}", headers=h(api, "cai")), 403, "purpose_required")
    assert api.client.get(f"/v1/listings/{o['id']}", headers=h(api, "ana")).json()["author"] == api.c.addr("ana")
    err(api.client.get("/v1/listings/" + "0" * 32, headers=h(api, "cai", True)), 404, "unknown_listing")
    err(api.client.get("/v1/listings/nothex", headers=h(api, "cai", True)), 400, "invalid_input")
    # browsing is not logged per author: no view counter hides in the access log
    log = api.client.get(f"/v1/accounts/{api.c.addr('ana')}/access-log", headers=h(api, "ana"))
    assert log.status_code == 200 and log.json()["items"] == []


def test_moderation_over_http(api):
    o = post(api, "ana", CARE)
    err(api.client.post(f"/v1/listings/{o['id']}/hide", json={"reason": "no"}, headers=h(api, "bea")),
        403, "not_authorised")
    r = api.client.post(f"/v1/listings/{o['id']}/hide", json={"reason": "names a third person"},
                        headers=h(api, "treasurer"))
    assert r.status_code == 200 and r.json()["hidden"]["reason"] == "names a third person"
    assert api.client.get("/v1/listings", headers=h(api, "bea", True)).json()["items"] == []
    err(api.client.get(f"/v1/listings/{o['id']}", headers=h(api, "bea", True)), 404, "unknown_listing")
    err(api.client.post(f"/v1/listings/{o['id']}/conversations", json={"message": "hi"}, headers=h(api, "bea")),
        404, "unknown_listing")
    mine = api.client.get("/v1/listings/mine?status=hidden", headers=h(api, "ana")).json()["items"]
    assert mine[0]["hidden"]["reason"] == "names a third person"
    log = api.client.get(f"/v1/listings/{o['id']}/moderation", headers=h(api, "ana")).json()["items"]
    assert [(m["action"], m["moderator"], m["reason"]) for m in log] == [
        ("hide", api.c.treasurer, "names a third person")]
    err(api.client.get(f"/v1/listings/{o['id']}/moderation", headers=h(api, "bea")), 404, "unknown_listing")
    # the treasurer's read of the hidden listing is in the author's access log
    assert api.client.get(f"/v1/listings/{o['id']}", headers=h(api, "treasurer", True)).status_code == 200
    entries = api.client.get(f"/v1/accounts/{api.c.addr('ana')}/access-log", headers=h(api, "ana")).json()["items"]
    assert [(e["accessor"], e["purpose"], e["categories"]) for e in entries] == [
        (api.c.treasurer, "exchange", ["listings"])]


def test_from_listing_to_paid_arrangement(api):
    n = post(api, "bea", SURGERY)
    r = api.client.post(f"/v1/listings/{n['id']}/conversations", json={"message": "I can help"},
                        headers=h(api, "ana"))
    assert r.status_code == 201, r.text
    conv = r.json()
    assert conv["you"] == "responder" and conv["author"] == api.c.addr("bea")
    again = api.client.post(f"/v1/listings/{n['id']}/conversations", json={"message": "on Monday"},
                            headers=h(api, "ana"))
    assert again.status_code == 200 and again.json()["id"] == conv["id"]
    cid = conv["id"]
    assert api.client.post(f"/v1/conversations/{cid}/messages", json={"text": "Thanks! Tuesday 10:00?"},
                           headers=h(api, "bea")).status_code == 201
    msgs = api.client.get(f"/v1/conversations/{cid}/messages", headers=h(api, "ana")).json()
    assert [m["text"] for m in msgs["items"]] == ["I can help", "on Monday", "Thanks! Tuesday 10:00?"]
    for who in ("cai", "treasurer"):  # nobody else, whatever their role or purpose
        err(api.client.get(f"/v1/conversations/{cid}", headers=h(api, who, True)), 404, "unknown_conversation")
        err(api.client.get(f"/v1/conversations/{cid}/messages", headers=h(api, who, True)), 404,
            "unknown_conversation")
        err(api.client.post(f"/v1/conversations/{cid}/messages", json={"text": "x"}, headers=h(api, who)),
            404, "unknown_conversation")
    a = api.client.post(f"/v1/conversations/{cid}/arrangements", headers=h(api, "ana"),
                        json={"what": "Shopping and cooking", "when": "12-14 May", "currency": "HOUR", "amount": 180})
    assert a.status_code == 201, a.text
    aid = a.json()["id"]
    assert a.json()["provider"] == api.c.addr("ana") and a.json()["status"] == "proposed"
    err(api.client.post(f"/v1/arrangements/{aid}/accept", headers=h(api, "ana")), 409, "invalid_transition")
    err(api.client.get(f"/v1/arrangements/{aid}", headers=h(api, "cai")), 404, "unknown_arrangement")
    assert api.client.post(f"/v1/arrangements/{aid}/accept", headers=h(api, "bea")).json()["status"] == "accepted"
    r = api.client.post(f"/v1/arrangements/{aid}/request-payment", json={"memo": "12-14 May"}, headers=h(api, "ana"))
    assert r.status_code == 201, r.text
    req = r.json()["request"]
    assert (req["payer"], req["payee"], req["amount"], req["currency"]) == \
        (api.c.addr("bea"), api.c.addr("ana"), 180, "HOUR")
    assert r.json()["arrangement"]["requestId"] == req["id"]
    # the receiver sees it among their requests and pays it with an ordinary signed transfer
    incoming = api.client.get("/v1/requests?direction=incoming", headers=h(api, "bea")).json()["items"]
    assert [x["id"] for x in incoming] == [req["id"]]
    sub = signing.transfer(api.c.keys["bea"], api.c.domain, payee=api.c.addr("ana"), currency="HOUR", amount=180,
                           request_id=bytes.fromhex(req["id"][2:]))
    paid = api.client.post("/v1/transfers", json=signing.transfer_json(sub))
    assert paid.status_code in (200, 201), paid.text
    done = api.client.get(f"/v1/arrangements/{aid}", headers=h(api, "ana")).json()
    assert done["status"] == "paid"
    assert api.client.post(f"/v1/arrangements/{aid}/thanks", json={"text": "Thank you!"},
                           headers=h(api, "bea")).status_code == 201
    assert api.client.get(f"/v1/arrangements/{aid}", headers=h(api, "ana")).json()["thanksReceived"] == "Thank you!"
    assert api.client.get(f"/v1/arrangements/{aid}", headers=h(api, "bea")).json()["thanksReceived"] is None
    err(api.client.post(f"/v1/arrangements/{aid}/cancel", headers=h(api, "bea")), 409, "invalid_transition")
    listed = api.client.get("/v1/arrangements?status=paid", headers=h(api, "bea")).json()["items"]
    assert [x["id"] for x in listed] == [aid]
    assert api.c.ledger.verify().ok


def test_author_controls_and_expiry(api):
    o = post(api, "ana", CARE)
    err(api.client.patch(f"/v1/listings/{o['id']}", json={"title": "mine"}, headers=h(api, "bea")),
        404, "unknown_listing")
    e = api.client.patch(f"/v1/listings/{o['id']}", json={"title": "Evening care"}, headers=h(api, "ana"))
    assert e.status_code == 200 and e.json()["title"] == "Evening care" and e.json()["createdAt"] == o["createdAt"]
    assert api.client.post(f"/v1/listings/{o['id']}/pause", headers=h(api, "ana")).json()["status"] == "paused"
    assert api.client.get("/v1/listings", headers=h(api, "bea", True)).json()["items"] == []
    assert api.client.post(f"/v1/listings/{o['id']}/resume", headers=h(api, "ana")).json()["status"] == "active"
    assert api.client.post(f"/v1/listings/{o['id']}/close", headers=h(api, "ana")).json()["status"] == "closed"
    err(api.client.post(f"/v1/listings/{o['id']}/close", headers=h(api, "ana")), 409, "invalid_transition")
    n = post(api, "bea", SURGERY)
    expired = n["expiresAt"]
    api.c.ledger.clock = lambda: expired
    assert api.client.get("/v1/listings", headers=h(api, "cai", True)).json()["items"] == []
    assert api.client.get(f"/v1/listings/{n['id']}", headers=h(api, "bea")).json()["status"] == "expired"


def test_openapi_shows_the_board_with_examples(api):
    spec = api.client.get("/openapi.json").json()
    for path in ("/v1/listings", "/v1/listings/{listing_id}", "/v1/conversations/{conversation_id}/messages",
                 "/v1/arrangements/{arrangement_id}/request-payment"):
        assert path in spec["paths"], path
    body = spec["components"]["schemas"]["ListingIn"]["properties"]
    assert body["title"]["examples"] == ["Elderly care, weekday mornings"]
    assert not any(word in str(spec["paths"].get("/v1/listings")) for word in ("rating", "score", "popular"))
