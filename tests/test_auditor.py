"""Auditors (issue 13, defect 14): an account with role `auditor`, opened by a treasurer, reads
the log, the balance sheet and anchors for the purpose `audit`; never memos or profiles; every
read is in the access log every member sees. SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from .test_api import Api, transfer_body


@pytest.fixture
def api(db_url, tmp_path):
    a = Api(db_url, tmp_path)
    for n in ("ana", "bea"):
        a.c.member(n)
    a.c.member("aud", role="auditor")
    yield a
    a.client.close()
    a.c.dispose()


def test_auditor_reads_the_books_for_audit_and_nothing_personal(api):
    a = api
    ana = a.c.addr("ana")
    seq = a.client.post("/v1/transfers", json=transfer_body(a.c.pay("ana", "bea", 30, memo="private note"))).json()["seq"]
    a.client.put(f"/v1/accounts/{ana}/profile", headers=a.h("ana"), json={"displayName": "Ana", "contact": "ana@x"})
    audit = {**a.h("aud"), "Ayni-Purpose": "audit"}

    log = a.client.get("/v1/log", headers=audit)
    assert log.status_code == 200, log.text
    assert [e["seq"] for e in log.json()["entries"]][-1] == seq
    sheet = a.client.get("/v1/balances", headers=audit)
    assert sheet.status_code == 200 and sheet.json()["headSeq"] == seq
    assert "private note" not in log.text + sheet.text
    # an entry of a member: shown as the log shows it, without the memo
    one = a.client.get(f"/v1/transfers/{seq}", headers=audit)
    assert one.status_code == 200 and "memo" not in one.json()
    hist = a.client.get(f"/v1/accounts/{ana}/history", headers=audit)
    assert hist.status_code == 200 and all("memo" not in i for i in hist.json()["items"])
    # profiles: never, for any purpose an auditor can name
    for purpose in ("audit", "member_directory", "reconciliation"):
        r = a.client.get(f"/v1/accounts/{ana}/profile", headers={**a.h("aud"), "Ayni-Purpose": purpose})
        assert r.status_code == 403 and r.json()["error"]["code"] == "purpose_not_allowed", (purpose, r.text)
    # without the purpose, or with the treasurer's: refused
    for headers, code in ((a.h("aud"), "purpose_required"),
                          ({**a.h("aud"), "Ayni-Purpose": "reconciliation"}, "purpose_not_allowed")):
        for path in ("/v1/log", "/v1/balances"):
            r = a.client.get(path, headers=headers)
            assert r.status_code == 403 and r.json()["error"]["code"] == code, (path, r.text)
    # a member may not read the log, purpose or not
    for purpose in (None, "audit", "reconciliation"):
        r = a.client.get("/v1/log", headers={**a.h("bea"), **({"Ayni-Purpose": purpose} if purpose else {})})
        assert r.status_code == 403, (purpose, r.text)
    # every member sees the auditor's reads in their access log
    seen = a.client.get(f"/v1/accounts/{ana}/access-log", headers=a.h("ana")).json()["items"]
    reads = {(x["resource"], x["purpose"], x["accessorRole"]) for x in seen}
    assert {("GET /v1/log", "audit", "auditor"), ("GET /v1/balances", "audit", "auditor"),
            ("GET /v1/transfers/{seq}", "audit", "auditor")} <= reads
    assert all(x["accessor"] == a.c.addr("aud") for x in seen if x["accessorRole"] == "auditor")
    assert not any("memos" in x["categories"] or "profile" in x["categories"]
                   for x in seen if x["accessorRole"] == "auditor")


def test_auditor_reads_receipts_and_anchors_for_audit(db_url, tmp_path):
    from fastapi.testclient import TestClient

    from api.app import Settings, create_app
    from ledger.anchoring import Anchoring
    from ledger.chain import AnchorChain

    from .conftest import Community
    c = Community(db_url)
    for n in ("ana", "bea"):
        c.member(n)
    c.member("aud", role="auditor")
    seq = c.ledger.submit(c.pay("ana", "bea", 30, memo="lunch")).seq
    chain = AnchorChain.embedded()
    chain.deploy()
    Anchoring(c.ledger, chain, max_batch=8).run()
    a = Api.__new__(Api)
    a.c, a.tokens = c, {}
    a.client = TestClient(create_app(c.ledger, Settings(
        db_url=db_url, public_host="ayni.test", public_uri="https://ayni.test", secret_file=str(tmp_path / "k"),
        anchor_contract=chain.contract_address)))
    try:
        assert a.client.get("/v1/anchors", headers=a.h("aud")).json()["batches"]
        r = a.client.get(f"/v1/receipts/{seq}", headers={**a.h("aud"), "Ayni-Purpose": "audit"})
        assert r.status_code == 200 and "lunch" not in r.text
        assert a.client.get(f"/v1/receipts/{seq}", headers=a.h("aud")).status_code == 403
    finally:
        a.client.close()
        c.dispose()


def test_an_auditor_neither_asks_for_nor_is_asked_for_a_payment(api):
    """Review of issue 13: an auditor holds no money, yet could create payment requests and be
    named payer of one (201). Both are refused (not_authorised), and nothing is stored."""
    headers = {n: api.h(n) for n in ("aud", "ana")}
    before = {k: v for k, v in api.c.snapshot().items() if k != "rate_limit_counters"}
    by_auditor = api.client.post("/v1/requests", headers=headers["aud"],
                                 json={"payer": api.c.addr("ana"), "currency": "HOUR", "amount": 30})
    of_auditor = api.client.post("/v1/requests", headers=headers["ana"],
                                 json={"payer": api.c.addr("aud"), "currency": "HOUR", "amount": 30})
    for r in (by_auditor, of_auditor):
        assert (r.status_code, r.json()["error"]["code"]) == (403, "not_authorised"), r.text
        assert "auditor" in r.json()["error"]["message"]
    assert {k: v for k, v in api.c.snapshot().items() if k != "rate_limit_counters"} == before
    ok = api.client.post("/v1/requests", headers=headers["ana"],
                         json={"payer": api.c.addr("bea"), "currency": "HOUR", "amount": 30})
    assert ok.status_code == 201, ok.text


def test_a_treasurer_cannot_set_an_auditors_limit(api):
    from ledger import signing
    lim = signing.set_limit(api.c.treasurer_key, api.c.domain, account=api.c.addr("aud"), currency="HOUR",
                            credit_limit=600, ceiling=None)
    message = {k: str(v) if k in ("nonce", "validUntil") else v for k, v in lim.action.message().items()}
    before = api.c.snapshot()
    r = api.client.post("/v1/admin/actions", json={"type": "SetLimit", "signature": lim.signature, "message": message})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "not_authorised"), r.text
    assert api.c.snapshot() == before
