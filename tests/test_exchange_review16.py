"""Review 16 of the exchange board (docs/exchange.md): each defect found, over HTTP on SQLite
and PostgreSQL, with the answer a member now gets."""
from __future__ import annotations

import base64

import pytest

from .test_api import Api
from .test_exchange_api import CARE, err, h, post


@pytest.fixture
def api(db_url, tmp_path):
    a = Api(db_url, tmp_path)
    for n in ("ana", "bea", "cai"):
        a.c.member(n)
    yield a
    a.client.close()
    a.c.dispose()


HUGE = "9999999999999999999"  # 19 digits, past 2**63 - 1


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_out_of_range_cursors_and_ids_are_4xx_with_a_reason(api):
    o = post(api, "ana", CARE)
    post(api, "ana", {**CARE, "title": "Evening care"})
    conv = api.client.post(f"/v1/listings/{o['id']}/conversations", json={"message": "hi"},
                           headers=h(api, "bea")).json()
    newest = _b64(f"{HUGE}:{'f' * 32}")
    for path, who, purpose in (("/v1/listings", "bea", True), ("/v1/listings/mine", "ana", False),
                               ("/v1/conversations", "bea", False), ("/v1/arrangements", "bea", False)):
        r = api.client.get(path, params={"cursor": newest}, headers=h(api, who, purpose))
        err(r, 400, "invalid_input")
        assert "cursor" in r.json()["error"]["message"]
    shuffle = api.client.get("/v1/listings", params={"order": "shuffle", "cursor": _b64(f"1:{HUGE}:{'f' * 32}")},
                             headers=h(api, "bea", True))
    err(shuffle, 400, "invalid_input")
    # messages.id is a 32-bit INTEGER on PostgreSQL: larger ids are refused, the largest it holds is fine
    msgs = f"/v1/conversations/{conv['id']}/messages"
    err(api.client.get(msgs, params={"after": 2**31}, headers=h(api, "bea")), 422, "invalid_input")
    err(api.client.get(msgs, params={"after": 2**63 - 1}, headers=h(api, "bea")), 422, "invalid_input")
    top = api.client.get(msgs, params={"after": 2**31 - 1}, headers=h(api, "bea"))
    assert top.status_code == 200 and top.json()["items"] == [], top.text
    assert api.client.get("/v1/listings", headers=h(api, "bea", True)).status_code == 200  # still serving
