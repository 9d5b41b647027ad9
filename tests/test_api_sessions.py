"""Sessions and rate limits over HTTP (issue 13, defects 7 and 9), on SQLite and PostgreSQL.

Defect 7: freezing an account ended its sessions only while frozen; now a token issued before
the account's last status change is refused for good. Defect 9: sign-in challenges and payment
requests could be created without limit; now per-client (and per-payee) limits answer 429 with
Retry-After, counted in the database (shared by every worker). Review of issue 13: the
per-address challenge limit and the stored-challenge caps let anyone lock a member out; now
challenges are stateless (nothing stored until one signs in) and only the client is limited."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import RATE_LIMITS, Settings, create_app
from ledger import signing
from ledger.core.typed_data import address_of_key
from ledger.store.auth_tables import auth_challenges

from .conftest import Community
from .test_auth import sign as sign_text
from .test_api import Api


def admin_json(sub) -> dict:
    a = sub.action
    return {"type": a.PRIMARY, "signature": sub.signature,
            "message": {k: str(v) if k in ("nonce", "validUntil") else v for k, v in a.message().items()}}


def make_api(db_url, tmp_path, **settings) -> Api:
    a = Api.__new__(Api)
    a.c, a.tokens = Community(db_url), {}
    s = Settings(db_url=db_url, public_host="ayni.test", public_uri="https://ayni.test",
                 secret_file=str(tmp_path / "session.key"), **settings)
    a.client = TestClient(create_app(a.c.ledger, s))
    return a


@pytest.fixture
def api(db_url, tmp_path):
    a = make_api(db_url, tmp_path)
    for n in ("ana", "bea"):
        a.c.member(n)
    yield a
    a.client.close()
    a.c.dispose()


# -- defect 7 ------------------------------------------------------------------------------------

def test_freezing_ends_sessions_for_good(api):
    ana = api.c.addr("ana")
    old = api.h("ana")
    assert api.client.get(f"/v1/accounts/{ana}", headers=old).status_code == 200
    freeze = api.client.post("/v1/admin/actions", json=admin_json(
        signing.set_status(api.c.treasurer_key, api.c.domain, account=ana, status="frozen")))
    assert freeze.status_code == 201, freeze.text
    r = api.client.get(f"/v1/accounts/{ana}", headers=old)
    assert r.status_code == 403 and "frozen" in r.json()["error"]["message"]
    unfreeze = api.client.post("/v1/admin/actions", json=admin_json(
        signing.set_status(api.c.treasurer_key, api.c.domain, account=ana, status="active")))
    assert unfreeze.status_code == 201, unfreeze.text
    r = api.client.get(f"/v1/accounts/{ana}", headers=old)  # the old token stays dead
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated", r.text
    del api.tokens["ana"]
    assert api.client.get(f"/v1/accounts/{ana}", headers=api.h("ana")).status_code == 200  # a new sign-in works
    # someone else's status change ends nobody else's session
    bea = api.h("bea")
    api.client.post("/v1/admin/actions", json=admin_json(
        signing.set_status(api.c.treasurer_key, api.c.domain, account=ana, status="frozen")))
    assert api.client.get(f"/v1/accounts/{api.c.addr('bea')}", headers=bea).status_code == 200


# -- defect 9 ------------------------------------------------------------------------------------

def challenge(client, address):
    return client.post("/v1/auth/challenge", json={"address": address})


def stored_challenges(api) -> int:
    with api.c.ledger.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(auth_challenges)).scalar_one()


def test_a_flood_of_challenges_from_one_client_is_refused_with_429(api):
    limit = int(RATE_LIMITS["challenge_per_client"].split("/")[0])
    codes = [challenge(api.client, address_of_key(signing.new_key())).status_code for _ in range(limit + 5)]
    assert codes[:limit] == [200] * limit and codes[limit:] == [429] * 5
    r = challenge(api.client, address_of_key(signing.new_key()))
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert stored_challenges(api) == 0  # issuing a challenge stores nothing


def test_a_flood_of_challenges_for_a_members_address_does_not_lock_them_out(db_url, tmp_path):
    """Review of issue 13 (t_rl4, t_rl2): 20 challenges a minute for a victim's address, from any
    client, refused the victim's own; stored challenges were capped per address and in total."""
    api = make_api(db_url, tmp_path, rate_limits={"challenge_per_client": "off"})  # as if from many clients
    try:
        api.c.member("ana")
        mine = challenge(api.client, api.c.addr("ana")).json()
        codes = {challenge(api.client, api.c.addr("ana")).status_code for _ in range(60)}
        codes |= {challenge(api.client, address_of_key(signing.new_key())).status_code for _ in range(60)}
        assert codes == {200}
        assert stored_challenges(api) == 0  # an unauthenticated client writes nothing
        r = api.client.post("/v1/auth/token", json={"message": mine["message"],
                                                    "signature": sign_text(mine["message"], api.c.keys["ana"])})
        assert r.status_code == 200, r.text  # the challenge asked for before the flood still works
        assert api.sign_in("ana")["token"]   # and so does a new one
        assert stored_challenges(api) == 2   # the two that signed in, kept until they expire
    finally:
        api.client.close()
        api.c.dispose()


def test_signing_in_for_every_command_never_meets_the_default_limits(api):
    """Review of issue 13 (t_rl3): the wallet signs in on every command, so 21 commands in 25 s
    met 429 (20 challenges a minute per address). A person or a till must never meet a limit."""
    for _ in range(60):
        api.tokens.pop("ana", None)
        assert api.sign_in("ana")["token"]
    body = {"payer": api.c.addr("bea"), "currency": "HOUR", "amount": 1}
    codes = {api.client.post("/v1/requests", headers=api.h("ana"), json=body).status_code for _ in range(61)}
    assert codes == {201}  # a till asking for one payment a second, for a minute


def test_a_flood_of_payment_requests_is_refused_and_writes_nothing(api):
    limit = int(RATE_LIMITS["request_per_payee"].split("/")[0])
    body = {"payer": api.c.addr("bea"), "currency": "HOUR", "amount": 1}
    headers = api.h("ana")
    codes = [api.client.post("/v1/requests", headers=headers, json=body).status_code for _ in range(limit)]
    assert codes == [201] * limit
    before = api.c.snapshot()
    r = api.client.post("/v1/requests", headers=headers, json=body)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
    after = api.c.snapshot()
    assert {k: v for k, v in after.items() if k != "rate_limit_counters"} == \
           {k: v for k, v in before.items() if k != "rate_limit_counters"}
    # bea is not ana: her requests are counted apart
    other = api.client.post("/v1/requests", headers=api.h("bea"), json={**body, "payer": api.c.addr("ana")})
    assert other.status_code == 201, other.text


def test_counts_are_shared_by_every_worker(db_url, tmp_path):
    """Two apps on one database (two uvicorn workers): one window, one count."""
    a = make_api(db_url, tmp_path, rate_limits={"challenge_per_client": "6/minute"})
    settings = Settings(db_url=db_url, public_host="ayni.test", public_uri="https://ayni.test",
                        secret_file=str(tmp_path / "session.key"), rate_limits={"challenge_per_client": "6/minute"})
    b = TestClient(create_app(a.c.ledger, settings))
    try:
        codes = [challenge(client, address_of_key(signing.new_key())).status_code
                 for _ in range(4) for client in (a.client, b)]
        assert codes == [200] * 6 + [429] * 2
    finally:
        b.close()
        a.client.close()
        a.c.dispose()


def test_a_limit_can_be_turned_off_and_unknown_names_are_refused(db_url, tmp_path):
    a = make_api(db_url, tmp_path, rate_limits={"challenge_per_client": "off"})
    try:
        limit = int(RATE_LIMITS["challenge_per_client"].split("/")[0])
        codes = {challenge(a.client, address_of_key(signing.new_key())).status_code for _ in range(limit + 10)}
        assert codes == {200}
        with pytest.raises(ValueError, match="unknown rate limits"):
            create_app(a.c.ledger, Settings(secret_file=str(tmp_path / "session.key"), rate_limits={"nope": "1/minute"}))
    finally:
        a.client.close()
        a.c.dispose()
