"""One rule for integers at the HTTP edge (review of issue 13): wherever an integer is expected,
in a body, a query or a path, anything that is not one (`1.0`, `"3.0"`, `1e2`, `6000.0`) is
`invalid_input` (422); before, `?after=1.0` was read as 1 and `"3.0"` or `6000.0` in a body
was `invalid_amount` (400) while `3.0` was 422. SQLite and PostgreSQL (the `api` fixture)."""
from __future__ import annotations

import pytest

from ledger import signing

from .test_api import api  # noqa: F401  (the fixture)

MAX_SEQ = 2**63 - 1


def refused_as_invalid_input(r, where: str) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_input" and where in r.json()["error"]["message"], r.text


@pytest.mark.parametrize("path", ["/v1/log?after=1.0", "/v1/log?limit=1e2", "/v1/log?after=+1", "/v1/log?after=%201",
                                  "/v1/transfers/1.0", "/v1/receipts/1.0",
                                  "/v1/accounts/{ana}/history?limit=1.0", "/v1/accounts/{ana}/history?since=1.5",
                                  "/v1/accounts/{ana}/access-log?after=1.0", "/v1/requests?limit=2.0"])
def test_a_query_or_path_integer_must_be_digits(api, path):  # noqa: F811
    name = "ana" if "{ana}" in path or "requests" in path else "treasurer"
    r = api.client.get(path.format(ana=api.c.addr("ana")), headers={**api.h(name), "Ayni-Purpose": "reconciliation"})
    refused_as_invalid_input(r, "decimal digits")


def test_the_log_cursor_states_its_real_bound(api):  # noqa: F811
    h = {**api.h("treasurer"), "Ayni-Purpose": "reconciliation"}
    refused_as_invalid_input(api.client.get(f"/v1/log?after={MAX_SEQ + 1}", headers=h), str(MAX_SEQ))
    assert api.client.get(f"/v1/log?after={MAX_SEQ}", headers=h).json() == {"entries": [], "nextAfter": None}
    assert api.client.get("/v1/log?after=1", headers=h).status_code == 200


@pytest.mark.parametrize("amount", ["3.0", 3.0, "1e3", " 3", "-3", True])
def test_a_request_amount_that_is_not_an_integer_is_invalid_input(api, amount):  # noqa: F811
    headers = api.h("ana")
    before = api.c.snapshot()
    r = api.client.post("/v1/requests", headers=headers,
                        json={"payer": api.c.addr("bea"), "currency": "HOUR", "amount": amount})
    refused_as_invalid_input(r, "amount")
    assert {k: v for k, v in api.c.snapshot().items() if k != "rate_limit_counters"} == \
           {k: v for k, v in before.items() if k != "rate_limit_counters"}


def test_an_integer_the_rules_refuse_keeps_its_code(api):  # noqa: F811
    for amount in (0, -3):
        r = api.client.post("/v1/requests", headers=api.h("ana"),
                            json={"payer": api.c.addr("bea"), "currency": "HOUR", "amount": amount})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_amount"), r.text
    r = api.client.post("/v1/requests", headers=api.h("ana"),
                        json={"payer": api.c.addr("bea"), "currency": "HOUR", "amount": "3"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("field,value", [("creditLimit", 6000.0), ("creditLimit", "6000.0"),
                                         ("nonce", 1.0), ("validUntil", "1e12")])
def test_an_admin_integer_that_is_not_an_integer_is_invalid_input(api, field, value):  # noqa: F811
    lim = signing.set_limit(api.c.treasurer_key, api.c.domain, account=api.c.addr("bea"), currency="HOUR",
                            credit_limit=6000, ceiling=None)
    message = {k: str(v) if k in ("nonce", "validUntil") else v for k, v in lim.action.message().items()}
    message[field] = value
    r = api.client.post("/v1/admin/actions", json={"type": "SetLimit", "signature": lim.signature, "message": message})
    refused_as_invalid_input(r, field)
