"""The HTTP API through FastAPI's TestClient: sign-in, posting, reading, the authorisation
matrix, and the error contract. A real ledger on SQLite and PostgreSQL underneath."""
import json
import secrets

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient

from api.app import Settings, create_app
from ledger import signing
from ledger.core.typed_data import address_of_key

from .conftest import Community


transfer_body = signing.transfer_json


class Api:
    def __init__(self, url, tmp_path):
        self.c = Community(url)
        settings = Settings(db_url=url, public_host="ayni.test", public_uri="https://ayni.test",
                            secret_file=str(tmp_path / "session.key"))
        self.client = TestClient(create_app(self.c.ledger, settings))
        self.tokens: dict[str, str] = {}

    def sign_in(self, name: str) -> dict:
        key = self.c.treasurer_key if name == "treasurer" else self.c.keys[name]
        address = address_of_key(key)
        ch = self.client.post("/v1/auth/challenge", json={"address": address})
        assert ch.status_code == 200, ch.text
        message = ch.json()["message"]
        sig = Account.sign_message(encode_defunct(text=message), key).signature.hex()
        r = self.client.post("/v1/auth/token", json={"message": message, "signature": "0x" + sig.removeprefix("0x")})
        assert r.status_code == 200, r.text
        self.tokens[name] = r.json()["token"]
        return r.json()

    def h(self, name: str | None) -> dict:
        if name is None:
            return {}
        if name not in self.tokens:
            self.sign_in(name)
        return {"Authorization": f"Bearer {self.tokens[name]}"}


@pytest.fixture
def api(db_url, tmp_path):
    a = Api(db_url, tmp_path)
    for n in ("ana", "bea"):
        a.c.member(n)
    a.c.member("shop", role="shop")
    yield a
    a.client.close()
    a.c.dispose()


def test_health_readiness_metrics_openapi(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    spec = api.client.get("/openapi.json").json()
    assert "/v1/transfers" in spec["paths"] and spec["info"]["version"] == "1"
    api.client.post("/v1/transfers", json=transfer_body(api.c.pay("ana", "bea", 5)))
    text = api.client.get("/metrics").text
    assert 'ayni_transfers_total{outcome="posted",reason=""} 1' in text
    assert "ayni_http_request_seconds_bucket" in text


def test_community_tells_wallets_what_to_sign(api):
    info = api.client.get("/v1/community").json()
    assert info["domain"]["salt"] == "0x" + api.c.domain.salt.hex()
    assert info["domain"]["chainId"] == str(api.c.domain.chain_id)
    assert {c["code"] for c in info["currencies"]} == {"HOUR", "CRED"}
    assert [f["name"] for f in info["types"]["Transfer"]][:4] == ["payer", "payee", "currency", "amount"]


def test_post_transfer_then_retry_then_read_back(api):
    sub = api.c.pay("ana", "shop", 250, currency="CRED", memo="bread")
    r = api.client.post("/v1/transfers", json=transfer_body(sub))
    assert r.status_code == 201, r.text
    seq = r.json()["seq"]
    again = api.client.post("/v1/transfers", json=transfer_body(sub))
    assert again.status_code == 200 and again.json() == {**r.json(), "duplicate": True}
    mine = api.client.get(f"/v1/transfers/{seq}", headers=api.h("ana")).json()
    assert mine["memo"] == "bread" and mine["direction"] == "out" and mine["amount"] == 250
    theirs = api.client.get(f"/v1/transfers/{seq}", headers=api.h("shop")).json()
    assert theirs["memo"] == "bread" and theirs["direction"] == "in"
    treasurer = api.client.get(f"/v1/transfers/{seq}", headers={**api.h("treasurer"),
                                                                 "Ayni-Purpose": "reconciliation"}).json()
    assert "memo" not in treasurer  # treasurers see the log, never memos
    acct = api.client.get(f"/v1/accounts/{api.c.addr('ana')}", headers=api.h("ana")).json()
    cred = next(b for b in acct["balances"] if b["currency"] == "CRED")
    assert cred["balance"] == -250 and cred["canSpend"] == 10_000 - 250 and cred["formatted"]["canSpend"] == "97.50"


@pytest.mark.parametrize("mutate,status,code", [
    (lambda b: b["transfer"].update(amount=10**9), 403, "wrong_signer"),  # changed after signing
    (lambda b: b.update(signature="0x" + "ab" * 65), 400, "bad_signature"),
    (lambda b: b["transfer"].update(payer="0x123"), 400, "invalid_address"),
    (lambda b: b["transfer"].update(amount=0), 400, "invalid_amount"),
    (lambda b: b["transfer"].update(amount=1.5), 422, "invalid_input"),
    (lambda b: b["transfer"].update(currency="hour"), 400, "invalid_input"),
    (lambda b: b.update(extra=1), 422, "invalid_input"),
    (lambda b: b.pop("signature"), 422, "invalid_input"),
])
def test_bad_transfers_get_json_errors_and_write_nothing(api, mutate, status, code):
    body = transfer_body(api.c.pay("ana", "bea", 5))
    mutate(body)
    before = api.c.snapshot()
    r = api.client.post("/v1/transfers", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]
    assert api.c.snapshot() == before


def test_rule_refusals_map_to_statuses(api):
    over = api.client.post("/v1/transfers", json=transfer_body(api.c.pay("ana", "bea", 601)))
    assert over.status_code == 422 and over.json()["error"]["code"] == "credit_limit_exceeded"
    sub = api.c.pay("ana", "bea", 5)
    api.client.post("/v1/transfers", json=transfer_body(sub))
    reuse = api.c.pay("ana", "bea", 6, nonce=sub.action.nonce)
    conflict = api.client.post("/v1/transfers", json=transfer_body(reuse))
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "nonce_reused"


def test_malformed_oversized_and_unknown_requests(api):
    r = api.client.post("/v1/transfers", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    big = api.client.post("/v1/transfers", content=b"x" * (65 * 1024), headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    missing = api.client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad_token = api.client.get(f"/v1/accounts/{api.c.addr('ana')}", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401 and bad_token.json()["error"]["code"] == "unauthenticated"


def test_admin_actions_signed_by_a_treasurer(api):
    newcomer = address_of_key(signing.new_key())
    sub = signing.open_account(api.c.treasurer_key, api.c.domain, account=newcomer, role="member")
    body = {"type": "OpenAccount", "signature": sub.signature,
            "message": {"account": newcomer, "role": "member", "nonce": str(sub.action.nonce),
                        "validUntil": str(sub.action.valid_until)}}
    assert api.client.post("/v1/admin/actions", json=body).status_code == 201
    forged = signing.open_account(api.c.keys["ana"], api.c.domain, account=address_of_key(signing.new_key()))
    body = {"type": "OpenAccount", "signature": forged.signature,
            "message": {"account": forged.action.account, "role": "member", "nonce": str(forged.action.nonce),
                        "validUntil": str(forged.action.valid_until)}}
    r = api.client.post("/v1/admin/actions", json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_authorised"
    lim = signing.set_limit(api.c.treasurer_key, api.c.domain, account=api.c.addr("bea"), currency="HOUR",
                            credit_limit=120, ceiling=None)
    body = {"type": "SetLimit", "signature": lim.signature,
            "message": {"account": api.c.addr("bea"), "currency": "HOUR", "creditLimit": 120, "hasCeiling": False,
                        "ceiling": 0, "nonce": str(lim.action.nonce), "validUntil": str(lim.action.valid_until)}}
    assert api.client.post("/v1/admin/actions", json=body).status_code == 201
    assert api.c.ledger.positions(api.c.addr("bea"))[(api.c.addr("bea"), "HOUR")].credit_limit == 120


def test_sign_in_refuses_a_message_signed_by_someone_else(api):
    ch = api.client.post("/v1/auth/challenge", json={"address": api.c.addr("ana")}).json()
    sig = Account.sign_message(encode_defunct(text=ch["message"]), api.c.keys["bea"]).signature.hex()
    r = api.client.post("/v1/auth/token", json={"message": ch["message"], "signature": "0x" + sig.removeprefix("0x")})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


ROLES = [None, "ana", "bea", "shop", "treasurer"]


def test_authorisation_matrix(api):
    a = api
    seq = a.client.post("/v1/transfers", json=transfer_body(a.c.pay("ana", "shop", 100, currency="CRED",
                                                                    memo="x"))).json()["seq"]
    req = a.client.post("/v1/requests", headers=a.h("shop"),
                        json={"payer": a.c.addr("ana"), "currency": "CRED", "amount": 300, "memo": "groceries"})
    assert req.status_code == 201, req.text
    rid = req.json()["id"]
    ana = a.c.addr("ana")
    # everyone sends the purpose a treasurer needs (ledger/privacy/policy.json); it gives a
    # member no right to another member's data
    matrix = {
        ("GET", "/v1/community", None): [200, 200, 200, 200, 200],
        ("GET", f"/v1/accounts/{ana}", "account_administration"): [401, 200, 403, 403, 200],
        ("GET", f"/v1/accounts/{ana}/history", "reconciliation"): [401, 200, 403, 403, 200],
        ("GET", f"/v1/transfers/{seq}", "reconciliation"): [401, 200, 403, 200, 200],
        ("GET", "/v1/log", "reconciliation"): [401, 403, 403, 403, 200],
        ("GET", "/v1/balances", "reconciliation"): [401, 403, 403, 403, 200],
        ("GET", f"/v1/requests/{rid}", None): [401, 200, 403, 200, 403],
        ("GET", "/v1/requests", None): [401, 200, 200, 200, 200],
    }
    for (method, path, purpose), expected in matrix.items():
        extra = {"Ayni-Purpose": purpose} if purpose else {}
        got = [a.client.request(method, path, headers={**a.h(role), **extra}).status_code for role in ROLES]
        assert got == expected, (path, got)
        if purpose:  # without a purpose, a treasurer is refused and told what to send
            r = a.client.request(method, path, headers=a.h("treasurer"))
            assert r.status_code == 403 and r.json()["error"]["code"] == "purpose_required", r.text
            assert "Ayni-Purpose" in r.json()["error"]["message"]
    # creating a request: anyone signed in, as the payee; never anonymously
    got = [a.client.post("/v1/requests", headers=a.h(role),
                         json={"payer": a.c.addr("bea"), "currency": "CRED", "amount": 1}).status_code
           for role in ROLES]
    assert got == [401, 201, 422, 201, 201]  # bea cannot ask herself (same_payer_payee)
    # public: the community document, health, metrics, sign-in; signature-authorised: posting
    for path in ("/v1/community", "/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert [a.client.get(path, headers=a.h(role)).status_code for role in ROLES] == [200] * 5, path
    # declining: only the payer
    got = [a.client.post(f"/v1/requests/{rid}/decline", headers=a.h(role)).status_code
           for role in (None, "bea", "shop", "treasurer", "ana")]
    assert got == [401, 403, 403, 403, 200]
    # treasurers read history without memos; members see their own memos
    t_hist = a.client.get(f"/v1/accounts/{ana}/history?purpose=reconciliation",
                          headers=a.h("treasurer")).json()["items"]
    assert t_hist and all("memo" not in item for item in t_hist)
    own = a.client.get(f"/v1/accounts/{ana}/history", headers=a.h("ana")).json()["items"]
    assert own[0]["memo"] == "x"


def test_payment_request_flow(api):
    a = api
    r = a.client.post("/v1/requests", headers=a.h("shop"),
                      json={"payer": a.c.addr("ana"), "currency": "CRED", "amount": 420, "memo": "vegetables"}).json()
    incoming = a.client.get("/v1/requests?direction=incoming", headers=a.h("ana")).json()["items"]
    assert [x["id"] for x in incoming] == [r["id"]] and incoming[0]["status"] == "open"
    sub = signing.transfer(a.c.keys["ana"], a.c.domain, payee=a.c.addr("shop"), currency="CRED", amount=420,
                           request_id=bytes.fromhex(r["id"][2:]))
    paid = a.client.post("/v1/transfers", json=transfer_body(sub))
    assert paid.status_code == 201, paid.text
    again = a.client.post("/v1/transfers", json=transfer_body(sub))
    assert again.status_code == 200 and again.json()["duplicate"]
    assert a.client.get(f"/v1/requests/{r['id']}", headers=a.h("ana")).json()["status"] == "paid"
    second = signing.transfer(a.c.keys["ana"], a.c.domain, payee=a.c.addr("shop"), currency="CRED", amount=420,
                              request_id=bytes.fromhex(r["id"][2:]))
    twice = a.client.post("/v1/transfers", json=transfer_body(second))
    assert twice.status_code == 409, twice.text
    wrong = signing.transfer(a.c.keys["ana"], a.c.domain, payee=a.c.addr("shop"), currency="CRED", amount=1,
                             request_id=secrets.token_bytes(32))
    assert a.client.post("/v1/transfers", json=transfer_body(wrong)).status_code == 404


def test_anchors_and_receipts(db_url, tmp_path):
    from ledger.anchoring import Anchoring
    from ledger.chain import AnchorChain
    from ledger.core.receipts import verify_receipt
    c = Community(db_url)
    for n in ("ana", "bea", "cho"):
        c.member(n)
    seq = c.ledger.submit(c.pay("ana", "bea", 30, memo="lunch")).seq
    chain = AnchorChain.embedded()
    chain.deploy()
    Anchoring(c.ledger, chain, max_batch=4).run()
    settings = Settings(db_url=db_url, public_host="ayni.test", public_uri="https://ayni.test",
                        secret_file=str(tmp_path / "k"), anchor_contract=chain.contract_address)
    a = Api.__new__(Api)
    a.c, a.tokens = c, {}
    a.client = TestClient(create_app(c.ledger, settings))
    try:
        batches = a.client.get("/v1/anchors").json()["batches"]
        assert batches and batches[-1]["lastSeq"] == c.ledger.head()[0] and batches[0]["firstSeq"] == 1
        got = [a.client.get(f"/v1/receipts/{seq}", headers={**a.h(r), "Ayni-Purpose": "reconciliation"}).status_code
               for r in (None, "cho", "ana", "bea", "treasurer")]
        assert got == [401, 403, 200, 200, 200]
        receipt = a.client.get(f"/v1/receipts/{seq}", headers=a.h("ana")).json()
        assert verify_receipt(receipt, chain) == [] and "lunch" not in json.dumps(receipt)
    finally:
        a.client.close()
        c.dispose()


def test_anchoring_endpoints_say_when_there_is_no_chain(api):
    r = api.client.get("/v1/anchors")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_the_app_survives_a_restart_of_its_lifespan(api):
    """Shutdown closes the group-commit writer; starting again must make a new one."""
    app = api.client.app
    for amount in (3, 4):
        with TestClient(app) as client:
            r = client.post("/v1/transfers", json=transfer_body(api.c.pay("ana", "bea", amount)))
            assert r.status_code == 201, r.text


def test_body_that_is_not_utf8_is_an_input_error(api):
    r = api.client.post("/v1/transfers", content=b"\xfb\xff", headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and r.json()["error"]["code"] == "invalid_input"
