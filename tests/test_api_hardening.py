"""Issue 13 defects on the HTTP face: floats where integers are signed (6), server-side
integrity faults answered as 500 and logged (10). SQLite and PostgreSQL."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import delete

from ledger import signing
from ledger.store import tables as T

from .test_api import Api, transfer_body


@pytest.fixture
def api(db_url, tmp_path):
    a = Api(db_url, tmp_path)
    for n in ("ana", "bea"):
        a.c.member(n)
    yield a
    a.client.close()
    a.c.dispose()


# -- defect 6: a whole-valued float is still not an integer ---------------------------------------

@pytest.mark.parametrize("field", ["amount", "nonce", "validUntil"])
def test_a_float_in_a_signed_transfer_is_refused_and_nothing_is_written(api, field):
    sub = api.c.pay("ana", "bea", 11, nonce=2**60)
    body = transfer_body(sub)
    value = float(int(body["transfer"][field]))  # the signed number, spelled as a float
    assert value == int(body["transfer"][field])  # exactly: 11.0, 1.152921504606847e18, ...
    body["transfer"][field] = value
    before = api.c.snapshot()
    r = api.client.post("/v1/transfers", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_input" and field in r.json()["error"]["message"]
    assert api.c.snapshot() == before


@pytest.mark.parametrize("field,value", [("amount", 3.0), ("expiresInSeconds", 3600.0)])
def test_a_float_in_a_payment_request_is_refused_and_nothing_is_written(api, field, value):
    body = {"payer": api.c.addr("bea"), "currency": "HOUR", "amount": 3, "expiresInSeconds": 3600}
    body[field] = value
    headers = api.h("ana")
    before = api.c.snapshot()
    r = api.client.post("/v1/requests", headers=headers, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_input" and field in r.json()["error"]["message"]
    assert api.c.snapshot() == before
    ok = api.client.post("/v1/requests", headers=headers, json={**body, field: int(value)})
    assert ok.status_code == 201, ok.text  # the same request with integers is fine


# -- defect 10: the server's own corruption is a 500, with its code, and logged -------------------

def test_an_integrity_fault_is_a_logged_500_not_a_client_error(api, caplog):
    ana = api.c.addr("ana")
    with api.c.ledger.engine.begin() as conn:  # corrupt the projection: ana loses her HOUR position
        conn.execute(delete(T.balances).where(T.balances.c.address == ana, T.balances.c.currency == "HOUR"))
    with caplog.at_level(logging.ERROR, logger="ayni.api"):
        r = api.client.post("/v1/transfers", json=transfer_body(api.c.pay("ana", "bea", 5)))
    assert r.status_code == 500, r.text
    assert r.json()["error"]["code"] == "integrity_violation"
    logged = [rec for rec in caplog.records if rec.name == "ayni.api" and rec.levelno == logging.ERROR]
    assert logged and "integrity_violation" in logged[0].getMessage()
    assert "no HOUR position" in logged[0].getMessage()
