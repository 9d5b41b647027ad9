"""Data sovereignty (issue 6): the declared policy covers every column, purpose-bound reads
(essential purposes and members' grants, with expiry and revocation), the access log, and
portable preference documents. Real ledger and API on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from api.app import Settings, create_app
from ledger import signing
from ledger.cli import app as ayni
from ledger.privacy.access import Access
from ledger.privacy.grants import Preferences
from ledger.privacy.policy import DEFAULT_PATH, load_policy, undeclared_columns
from ledger.store.privacy_tables import privacy_access_log

from .test_api import Api

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOUR_MS = 3_600_000


def schema(name: str):
    return jsonschema_rs.validator_for(json.loads((DOCS / name).read_text()))


class Clock:
    """The ledger's clock (unix ms), which grant expiry and the access log use."""
    def __init__(self):
        self.now = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def coop(db_url, tmp_path):
    a = Api(db_url, tmp_path)
    a.clock = Clock()
    a.c.ledger.clock = a.clock
    for n in ("ana", "bea", "cho", "dan"):
        a.c.member(n)
    a.ana = a.c.addr("ana")
    seq = a.client.post("/v1/transfers", json=signing.transfer_json(a.c.pay("ana", "bea", 30, memo="bath"))).json()["seq"]
    a.seq = seq
    yield a
    a.client.close()
    a.c.dispose()


def get(a, path, who, purpose=None):
    headers = {**a.h(who), **({"Ayni-Purpose": purpose} if purpose else {})}
    return a.client.get(path, headers=headers)


def grant(a, who, body):
    return a.client.post(f"/v1/accounts/{a.c.addr(who)}/grants", headers=a.h(who), json=body)


def until(a, hours=24):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a.clock.now / 1000 + hours * 3600))


def access_rows(a, who):
    r = get(a, f"/v1/accounts/{a.c.addr(who)}/access-log", who)
    assert r.status_code == 200, r.text
    return r.json()["items"]


# -- the declaration --------------------------------------------------------------------------

def test_policy_matches_its_schema_and_is_served_and_printed(coop):
    doc = json.loads(DEFAULT_PATH.read_text())
    assert list(schema("data-policy.schema.json").iter_errors(doc)) == []
    served = coop.client.get("/v1/data-policy")
    assert served.status_code == 200 and served.json() == doc
    printed = CliRunner().invoke(ayni, ["data-policy", "--json"])
    assert printed.exit_code == 0 and json.loads(printed.output) == doc
    human = CliRunner().invoke(ayni, ["data-policy"])
    assert human.exit_code == 0 and "transfer_memo [memos]: kept 365 days" in human.output
    p = load_policy()
    assert set(p.purpose("reconciliation").categories) == {"entries", "balances", "anchors"}
    assert set(p.purpose("account_administration").categories) == {"account", "balances"}
    assert p.purpose("reconciliation").essential and p.purpose("account_administration").essential


def test_every_database_column_is_declared(db_url):
    from ledger.store import migrate
    from ledger.store.db import make_engine
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    try:
        assert undeclared_columns(engine, load_policy()) == (set(), set())
        # the check reads the live schema: a column nobody declared is caught
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE profiles ADD COLUMN birthday VARCHAR(10)"))
        assert undeclared_columns(engine, load_policy()) == ({"profiles.birthday"}, set())
    finally:
        engine.dispose()


def test_an_inconsistent_policy_file_is_refused(tmp_path):
    doc = json.loads(DEFAULT_PATH.read_text())
    doc["items"][0]["category"] = "horoscope"
    bad = tmp_path / "policy.json"
    bad.write_text(json.dumps(doc))
    r = CliRunner().invoke(ayni, ["data-policy", "--policy", str(bad)])
    assert r.exit_code == 1 and "undeclared category horoscope" in r.output


# -- essential purposes -------------------------------------------------------------------------

def test_reconciliation_sees_entries_and_balances_never_memos(coop):
    a = coop
    hist = get(a, f"/v1/accounts/{a.ana}/history", "treasurer", "reconciliation")
    assert hist.status_code == 200 and hist.json()["items"] and all("memo" not in i for i in hist.json()["items"])
    one = get(a, f"/v1/transfers/{a.seq}", "treasurer", "reconciliation").json()
    assert one["amount"] == 30 and "memo" not in one
    assert get(a, "/v1/balances", "treasurer", "reconciliation").status_code == 200
    # query form works as well as the header
    assert a.client.get("/v1/log?purpose=reconciliation", headers=a.h("treasurer")).status_code == 200
    # reconciliation covers no account record or profile
    for path in (f"/v1/accounts/{a.ana}", f"/v1/accounts/{a.ana}/profile"):
        r = get(a, path, "treasurer", "reconciliation")
        assert r.status_code == 403 and r.json()["error"]["code"] == "purpose_not_allowed", r.text
    acct = get(a, f"/v1/accounts/{a.ana}", "treasurer", "account_administration")
    assert acct.status_code == 200 and acct.json()["status"] == "active"
    r = get(a, f"/v1/accounts/{a.ana}/history", "treasurer", "account_administration")
    assert r.status_code == 403 and "send `Ayni-Purpose: reconciliation`" in r.json()["error"]["message"]


@pytest.mark.parametrize("who,purpose,code", [
    ("treasurer", None, "purpose_required"),
    ("treasurer", "curiosity", "purpose_not_allowed"),          # not declared
    ("treasurer", "member_directory", "purpose_not_allowed"),   # declared, grant-only, no grant
    ("bea", None, "purpose_required"),
    ("bea", "reconciliation", "purpose_not_allowed"),          # essential, but not for a member
    ("bea", "care_coordination", "purpose_not_allowed"),       # grantable, not granted
])
def test_reads_without_a_covering_purpose_are_refused(coop, who, purpose, code):
    coop.h(who)  # sign in first: the snapshot is of the read alone
    before = coop.c.snapshot()
    r = get(coop, f"/v1/accounts/{coop.ana}/history", who, purpose)
    assert r.status_code == 403 and r.json()["error"]["code"] == code, r.text
    assert "Ayni-Purpose" in r.json()["error"]["message"] or "grant" in r.json()["error"]["message"]
    assert coop.c.snapshot() == before  # a refused read is not logged as an access


def test_own_data_needs_no_purpose_and_is_not_logged(coop):
    a = coop
    for path in (f"/v1/accounts/{a.ana}", f"/v1/accounts/{a.ana}/history", f"/v1/transfers/{a.seq}",
                 f"/v1/accounts/{a.ana}/profile"):
        assert get(a, path, "ana").status_code == 200, path
    assert get(a, f"/v1/transfers/{a.seq}", "bea").json()["memo"] == "bath"  # the payee is a party
    assert access_rows(a, "ana") == []


# -- the access log ----------------------------------------------------------------------------

def test_access_log_records_who_what_purpose_when(coop):
    a = coop
    get(a, f"/v1/accounts/{a.ana}/history", "treasurer", "reconciliation")
    rows = access_rows(a, "ana")
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {"id", "at", "accessor", "accessorRole", "subject", "categories", "purpose", "basis",
                        "resource"}  # minimal: no IP, no query, no user agent
    assert (row["accessor"], row["accessorRole"], row["subject"], row["categories"], row["purpose"],
            row["basis"], row["resource"]) == (a.c.treasurer, "treasurer", a.ana, ["entries"], "reconciliation",
                                               "policy", "GET /v1/accounts/{address}/history")
    assert row["at"] == a.clock.now
    # ana's history shows her transfer with bea: bea's data too, so logged for bea as well
    assert [(r["subject"], r["categories"], r["basis"], r["resource"]) for r in access_rows(a, "bea")] == [
        (a.c.addr("bea"), ["entries"], "policy", "GET /v1/accounts/{address}/history")]
    assert access_rows(a, "cho") == []  # not on the page
    # a single transfer is both parties' data: logged for both
    get(a, f"/v1/transfers/{a.seq}", "treasurer", "reconciliation")
    assert access_rows(a, "bea")[-1]["resource"] == "GET /v1/transfers/{seq}"
    # only the member reads their access log
    assert get(a, f"/v1/accounts/{a.ana}/access-log", "treasurer", "reconciliation").status_code == 403
    assert get(a, f"/v1/accounts/{a.ana}/access-log", "bea").status_code == 403
    # paging
    for _ in range(3):
        get(a, f"/v1/accounts/{a.ana}", "treasurer", "account_administration")
    page = get(a, f"/v1/accounts/{a.ana}/access-log?limit=2", "ana").json()
    rest = get(a, f"/v1/accounts/{a.ana}/access-log?after={page['nextAfter']}", "ana").json()
    assert len(page["items"]) == 2 and len(rest["items"]) == 3 and rest["nextAfter"] is None  # 5 reads in all


def test_bulk_reads_are_one_row_each_seen_by_every_member(coop):
    a = coop
    for n in range(5):
        a.client.post("/v1/transfers", json=signing.transfer_json(a.c.pay("cho", "dan", 1 + n)))

    def count():
        with a.c.ledger.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(privacy_access_log)).scalar_one()

    before = count()
    page = get(a, "/v1/log?limit=3", "treasurer", "reconciliation")
    assert page.status_code == 200 and len(page.json()["entries"]) == 3
    get(a, "/v1/balances", "treasurer", "reconciliation")
    assert count() == before + 2  # one row per request, not one per member or entry
    for member in ("ana", "bea", "cho", "dan"):
        rows = [r for r in access_rows(a, member) if r["subject"] == "all members"]
        assert [(r["resource"], r["categories"]) for r in rows] == [("GET /v1/log", ["entries"]),
                                                                    ("GET /v1/balances", ["balances"])]


# -- grants ---------------------------------------------------------------------------------------

def test_grant_to_an_account_covers_exactly_its_category_and_purpose(coop):
    a = coop
    path = f"/v1/accounts/{a.ana}/history"
    r = grant(a, "ana", {"grantee": {"account": a.c.addr("cho")}, "category": "entries",
                         "purpose": "care_coordination", "until": until(a)})
    assert r.status_code == 201, r.text
    items = get(a, path, "cho", "care_coordination").json()["items"]
    assert items and "memo" not in items[0]                       # entries granted, memos not
    assert get(a, path, "cho", "research").status_code == 403      # other purpose
    assert get(a, path, "dan", "care_coordination").status_code == 403  # other account
    assert get(a, f"/v1/accounts/{a.c.addr('bea')}/history", "cho", "care_coordination").status_code == 403
    grant(a, "ana", {"grantee": {"account": a.c.addr("cho")}, "category": "memos",
                     "purpose": "care_coordination", "until": until(a)})
    # the memo of ana's transfer to bea is bea's too: not shown until bea also allows it
    assert "memo" not in get(a, path, "cho", "care_coordination").json()["items"][0]
    grant(a, "bea", {"grantee": {"account": a.c.addr("cho")}, "category": "memos",
                     "purpose": "care_coordination", "until": until(a)})
    assert get(a, path, "cho", "care_coordination").json()["items"][0]["memo"] == "bath"
    rows = access_rows(a, "ana")
    assert [(r["accessor"], r["basis"], r["categories"]) for r in rows] == [
        (a.c.addr("cho"), "grant", ["entries"]), (a.c.addr("cho"), "grant", ["entries", "memos"]),
        (a.c.addr("cho"), "grant", ["entries", "memos"])]
    assert [(r["basis"], r["categories"]) for r in access_rows(a, "bea")] == [
        ("counterparty", ["entries"]), ("counterparty", ["entries"]), ("grant", ["entries", "memos"])]


def test_grant_to_a_role_lets_treasurers_see_memos_only_for_that_purpose(coop):
    a = coop
    for category in ("entries", "memos"):
        assert grant(a, "ana", {"grantee": {"role": "treasurer"}, "category": category,
                                "purpose": "dispute_resolution", "until": until(a)}).status_code == 201
    one = get(a, f"/v1/transfers/{a.seq}", "treasurer", "dispute_resolution")
    assert one.status_code == 200 and "memo" not in one.json()  # bea, the other party, has not allowed it
    assert grant(a, "bea", {"grantee": {"role": "treasurer"}, "category": "memos",
                            "purpose": "dispute_resolution", "until": until(a)}).status_code == 201
    assert get(a, f"/v1/transfers/{a.seq}", "treasurer", "dispute_resolution").json()["memo"] == "bath"
    assert "memo" not in get(a, f"/v1/transfers/{a.seq}", "treasurer", "reconciliation").json()
    # the grant names the treasurer role: a member is not covered
    assert get(a, f"/v1/transfers/{a.seq}", "cho", "dispute_resolution").status_code == 403


def test_grant_to_an_organisation_covers_its_accounts_only(coop):
    a = coop
    Preferences(a.c.ledger, load_policy()).add_to_organisation("Care Research Lab", a.c.addr("cho"))
    grant(a, "ana", {"grantee": {"organisation": "Care Research Lab"}, "category": "entries",
                     "purpose": "research", "until": until(a)})
    assert get(a, f"/v1/accounts/{a.ana}/history", "cho", "research").status_code == 200
    assert get(a, f"/v1/accounts/{a.ana}/history", "dan", "research").status_code == 403
    assert Preferences(a.c.ledger, load_policy()).remove_from_organisation("Care Research Lab", a.c.addr("cho"))
    assert get(a, f"/v1/accounts/{a.ana}/history", "cho", "research").status_code == 403


def test_grants_expire_and_can_be_revoked(coop):
    a = coop
    g = grant(a, "ana", {"grantee": {"account": a.c.addr("cho")}, "category": "profile",
                         "purpose": "member_directory", "until": until(a, hours=1)}).json()
    path = f"/v1/accounts/{a.ana}/profile"
    assert get(a, path, "cho", "member_directory").status_code == 200
    a.clock.now += HOUR_MS  # `until` is exclusive
    r = get(a, path, "cho", "member_directory")
    assert r.status_code == 403 and r.json()["error"]["code"] == "purpose_not_allowed"
    a.clock.now -= 2 * HOUR_MS
    assert get(a, path, "cho", "member_directory").status_code == 200
    gone = a.client.delete(f"/v1/accounts/{a.ana}/grants/{g['id']}", headers=a.h("ana"))
    assert gone.status_code == 200
    assert get(a, path, "cho", "member_directory").status_code == 403
    again = a.client.delete(f"/v1/accounts/{a.ana}/grants/{g['id']}", headers=a.h("ana"))
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("body,needle", [
    ({"grantee": {"role": "treasurer"}, "category": "entries", "purpose": "reconciliation"}, "essential"),
    ({"grantee": {"role": "treasurer"}, "category": "memos", "purpose": "research"}, "covers only"),
    ({"grantee": {"role": "treasurer"}, "category": "entries", "purpose": "gossip"}, "not declared"),
    ({"grantee": {"role": "king"}, "category": "entries", "purpose": "research"}, "grantee role"),
    ({"grantee": {"role": "shop", "account": "0x" + "11" * 20}, "category": "entries", "purpose": "research"},
     "grantee must be one of"),
    ({"grantee": {"account": "self"}, "category": "entries", "purpose": "research"}, "you need no grant"),
    ({"grantee": {"role": "member"}, "category": "entries", "purpose": "research", "until": "2001-01-01T00:00:00Z"},
     "not in the future"),
    ({"grantee": {"role": "member"}, "category": "entries", "purpose": "research", "until": "next week"},
     "time with a zone"),
])
def test_bad_grants_are_refused(coop, body, needle):
    body = {"until": until(coop), **body}
    if body["grantee"].get("account") == "self":
        body["grantee"] = {"account": coop.ana}
    r = grant(coop, "ana", body)
    assert r.status_code == 400 and needle in r.json()["error"]["message"], r.text
    assert coop.client.get(f"/v1/accounts/{coop.ana}/preferences", headers=coop.h("ana")).json()["grants"] == []


def test_preferences_are_the_members_own(coop):
    a = coop
    for method, suffix in (("GET", "preferences"), ("PUT", "preferences"), ("GET", "access-log"),
                           ("PUT", "profile"), ("POST", "erasure"), ("GET", "erasure")):
        body = {"version": 1, "grants": []} if suffix == "preferences" else {}
        r = a.client.request(method, f"/v1/accounts/{a.ana}/{suffix}", headers=a.h("treasurer"),
                             json=body if method != "GET" else None)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (suffix, r.text)
    r = a.client.post(f"/v1/accounts/{a.ana}/grants", headers=a.h("bea"),
                      json={"grantee": {"role": "member"}, "category": "entries", "purpose": "research",
                            "until": until(a)})
    assert r.status_code == 403


def test_preference_document_exports_and_imports_into_another_cooperative(coop, tmp_path):
    a = coop
    cho, org = a.c.addr("cho"), "Care Research Lab"
    grant(a, "ana", {"grantee": {"account": cho}, "category": "memos", "purpose": "care_coordination",
                     "until": until(a)})
    a.clock.now += 1  # the document lists grants in the order they were made
    grant(a, "ana", {"grantee": {"organisation": org}, "category": "entries", "purpose": "research",
                     "until": until(a, hours=48)})
    doc = a.client.get(f"/v1/accounts/{a.ana}/preferences", headers=a.h("ana")).json()
    assert list(schema("preferences.schema.json").iter_errors(doc)) == []
    assert doc["member"] == a.ana and doc["version"] == 1 and len(doc["grants"]) == 2
    # another cooperative (own database), whose policy does not know "research"
    policy = json.loads(DEFAULT_PATH.read_text())
    policy["purposes"] = [p for p in policy["purposes"] if p["id"] != "research"]
    (tmp_path / "other").mkdir()
    own_policy = tmp_path / "other" / "policy.json"
    own_policy.write_text(json.dumps(policy))
    other = Api(f"sqlite:///{tmp_path}/other/ayni.db", tmp_path / "other")
    other.client = TestClient(create_app(other.c.ledger, Settings(
        public_host="ayni.test", public_uri="https://ayni.test", secret_file=str(tmp_path / "other" / "k"),
        data_policy=str(own_policy))))
    try:
        other.c.keys["ana"] = a.c.keys["ana"]  # the member keeps her key
        other.c.ledger.submit(signing.open_account(other.c.treasurer_key, other.c.domain, account=a.ana))
        r = other.client.put(f"/v1/accounts/{a.ana}/preferences", headers=other.h("ana"), json=doc)
        assert r.status_code == 200, r.text
        assert r.json()["imported"] == 1 and [s["index"] for s in r.json()["skipped"]] == [1]
        moved = other.client.get(f"/v1/accounts/{a.ana}/preferences", headers=other.h("ana")).json()
        strip = [{k: g[k] for k in ("grantee", "category", "purpose", "until")} for g in moved["grants"]]
        assert strip == [{k: doc["grants"][0][k] for k in ("grantee", "category", "purpose", "until")}]
        assert moved["exportedFrom"] == "Test coop"
        # a malformed document changes nothing
        bad = other.client.put(f"/v1/accounts/{a.ana}/preferences", headers=other.h("ana"),
                               json={"version": 1, "grants": [{"grantee": {"role": "king"}, "category": "x",
                                                               "purpose": "y", "until": "z"}]})
        assert bad.status_code == 400
        assert other.client.get(f"/v1/accounts/{a.ana}/preferences", headers=other.h("ana")).json()["grants"] == \
            moved["grants"]
    finally:
        other.client.close()
        other.c.dispose()


# -- profiles -----------------------------------------------------------------------------------

def test_profile_is_never_seen_by_treasurers_without_a_grant(coop):
    a = coop
    r = a.client.put(f"/v1/accounts/{a.ana}/profile", headers=a.h("ana"),
                     json={"displayName": "Ana", "contact": "ana@example.org"})
    assert r.status_code == 200 and r.json()["displayName"] == "Ana"
    for purpose in ("reconciliation", "account_administration", None):
        assert get(a, f"/v1/accounts/{a.ana}/profile", "treasurer", purpose).status_code == 403
    grant(a, "ana", {"grantee": {"role": "member"}, "category": "profile", "purpose": "member_directory",
                     "until": until(a)})
    assert get(a, f"/v1/accounts/{a.ana}/profile", "bea", "member_directory").json()["contact"] == "ana@example.org"
    bad = a.client.put(f"/v1/accounts/{a.ana}/profile", headers=a.h("ana"), json={"displayName": "A\nB"})
    assert bad.status_code == 400


# -- no scoring --------------------------------------------------------------------------------

def test_nothing_scores_rates_or_ranks_workers(coop):
    spec = json.dumps(coop.client.get("/openapi.json").json()).lower()
    for word in ("score", "rating", "rank", "leaderboard", "performance"):
        assert word not in spec, word
    principles = (DOCS / "data-principles.md").read_text().lower()
    assert "score" in principles and "rank" in principles


# -- review findings (issue 6 privacy review) ------------------------------------------------------

def test_refusals_never_name_a_party_the_reader_did_not_name(coop):
    """H1: a member enumerating /v1/transfers/{seq} learns nobody's address from the refusal,
    and cannot tell a transfer from another entry or from nothing."""
    a = coop
    seq = a.client.post("/v1/transfers", json=signing.transfer_json(a.c.pay("cho", "dan", 7))).json()["seq"]
    head = a.c.ledger.head()[0]
    answers = {}
    for s in (seq, 2, head + 50):  # a transfer, an account opening, nothing
        r = get(a, f"/v1/transfers/{s}", "bea", "research")
        answers[s] = (r.status_code, r.json()["error"]["code"], r.json()["error"]["message"])
        for address in [a.c.addr(n) for n in ("ana", "bea", "cho", "dan")] + [a.c.treasurer]:
            assert address not in r.text
    assert answers[seq] == answers[2] == answers[head + 50], answers
    assert answers[seq][0] == 403 and "a party of this transfer" in answers[seq][2]
    assert get(a, f"/v1/transfers/{seq}", "bea").json()["error"]["code"] == "purpose_required"
    assert get(a, f"/v1/transfers/{head + 50}", "bea").json()["error"]["code"] == "purpose_required"
    # a reader whose role covers entries is told the truth: 404
    assert get(a, f"/v1/transfers/{head + 50}", "treasurer", "reconciliation").status_code == 404
    assert get(a, "/v1/transfers/2", "treasurer", "reconciliation").status_code == 404
    assert access_rows(a, "cho") == [] and access_rows(a, "dan") == []  # nothing was read


def test_memo_is_shown_to_a_third_party_only_if_both_parties_allow_it(coop):
    """M4: ana's grant shows cho the transfer bea made to ana, but not bea's memo; bea is told."""
    a = coop
    seq = a.client.post("/v1/transfers", json=signing.transfer_json(
        a.c.pay("bea", "ana", 5, memo="bea's private note"))).json()["seq"]
    for cat in ("entries", "memos"):
        assert grant(a, "ana", {"grantee": {"account": a.c.addr("cho")}, "category": cat,
                                "purpose": "care_coordination", "until": until(a)}).status_code == 201
    one = get(a, f"/v1/transfers/{seq}", "cho", "care_coordination")
    assert one.status_code == 200 and one.json()["amount"] == 5 and "memo" not in one.json()
    hist = get(a, f"/v1/accounts/{a.ana}/history", "cho", "care_coordination").json()["items"]
    assert hist and all("memo" not in t for t in hist)
    bea = access_rows(a, "bea")
    assert [(r["accessor"], r["basis"], r["categories"], r["resource"]) for r in bea] == [
        (a.c.addr("cho"), "counterparty", ["entries"], "GET /v1/transfers/{seq}"),
        (a.c.addr("cho"), "counterparty", ["entries"], "GET /v1/accounts/{address}/history")]
    # once bea allows it too, the memo shows, and bea's log says so
    grant(a, "bea", {"grantee": {"account": a.c.addr("cho")}, "category": "memos",
                     "purpose": "care_coordination", "until": until(a)})
    assert get(a, f"/v1/transfers/{seq}", "cho", "care_coordination").json()["memo"] == "bea's private note"
    assert access_rows(a, "bea")[-1]["categories"] == ["entries", "memos"]
    # a party reads her own transfer's memo with no grant at all
    assert get(a, f"/v1/transfers/{seq}", "bea").json()["memo"] == "bea's private note"


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
                                   "+10000-01-01T00:00:00Z", 2**62, -1, 2**63])
def test_grant_until_beyond_what_a_date_can_name_is_refused(coop, value):
    """M1/M2: a far-future `until` was a 500, and an integer one poisoned the preferences."""
    body = {"grantee": {"role": "member"}, "category": "profile", "purpose": "member_directory", "until": value}
    if isinstance(value, str):
        r = grant(coop, "ana", body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input", r.text
    path = f"/v1/accounts/{coop.ana}/preferences"
    r = coop.client.put(path, headers=coop.h("ana"), json={"version": 1, "grants": [body]})
    assert r.status_code == 200 and r.json()["imported"] == 0, r.text
    assert r.json()["skipped"][0]["reason"].startswith("until must be")
    assert coop.client.get(path, headers=coop.h("ana")).status_code == 200


def test_the_latest_nameable_until_is_accepted(coop):
    r = grant(coop, "ana", {"grantee": {"role": "member"}, "category": "profile", "purpose": "member_directory",
                            "until": "9999-12-31T23:59:59Z"})
    assert r.status_code == 201, r.text
    doc = coop.client.get(f"/v1/accounts/{coop.ana}/preferences", headers=coop.h("ana")).json()
    assert doc["grants"][0]["until"] == "9999-12-31T23:59:59Z"


def test_import_warns_of_organisations_unknown_here(coop):
    """L3: the grant is the member's wish, so it is kept, but she is told it covers nobody yet."""
    a = coop
    Preferences(a.c.ledger, load_policy()).add_to_organisation("Known Lab", a.c.addr("cho"))
    doc = {"version": 1, "grants": [
        {"grantee": {"organisation": name}, "category": "memos", "purpose": "care_coordination", "until": until(a)}
        for name in ("Known Lab", "Care Research Lab")]}
    r = a.client.put(f"/v1/accounts/{a.ana}/preferences", headers=a.h("ana"), json=doc)
    assert r.status_code == 200 and r.json()["imported"] == 2 and r.json()["skipped"] == []
    assert [w["index"] for w in r.json()["warnings"]] == [1]
    assert "'Care Research Lab' is unknown here" in r.json()["warnings"][0]["reason"]


@pytest.mark.parametrize("name", ["Care\u202eLab", "Care\u200bLab", "Care\u2028Lab", "Care\u2029Lab", "Care\x00Lab",
                                  "\ufeffCare Lab", "Care\u00a0Lab", "x" * 121, ""])
def test_organisation_names_are_printable(coop, name, db_url):
    """L4: no bidi override, zero-width, separator or control character lets one name pass for another."""
    a = coop
    r = grant(a, "ana", {"grantee": {"organisation": name}, "category": "entries", "purpose": "research",
                         "until": until(a)})
    assert r.status_code == 400 and "organisation" in r.json()["error"]["message"], r.text
    cli = CliRunner().invoke(ayni, ["org", "add", name, a.c.addr("cho"), "--db", db_url])
    assert cli.exit_code == 1 and "printable" in cli.output
    assert grant(a, "ana", {"grantee": {"organisation": "Cuidado Lab – Región Sur"}, "category": "entries",
                            "purpose": "research", "until": until(a)}).status_code == 201


def test_access_log_cursor_beyond_the_id_column_is_refused_not_a_500(coop):
    """M3: the id is a 32-bit integer on PostgreSQL."""
    a = coop
    ok = get(a, f"/v1/accounts/{a.ana}/access-log?after={2**31 - 1}", "ana")
    assert ok.status_code == 200 and ok.json()["items"] == []
    for after in (2**31, 2**62, 10**30):
        r = get(a, f"/v1/accounts/{a.ana}/access-log?after={after}", "ana")
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input", r.text


def test_receipts_of_account_entries_are_the_accounts_data(db_url, tmp_path):
    """M5: the receipt of a member's OpenAccount / SetStatus is hers (she reads it with no purpose,
    a treasurer's read is in her log as hers), not "all members'"."""
    from ledger.anchoring import Anchoring
    from ledger.chain import AnchorChain
    from .conftest import Community
    c = Community(db_url)
    c.member("ana")
    c.member("bea")
    limit = c.ledger.submit(signing.set_limit(c.treasurer_key, c.domain, account=c.addr("bea"), currency="HOUR",
                                              credit_limit=120)).seq
    frozen = c.ledger.submit(signing.set_status(c.treasurer_key, c.domain, account=c.addr("bea"),
                                                status="frozen")).seq
    chain = AnchorChain.embedded()
    chain.deploy()
    Anchoring(c.ledger, chain, max_batch=100).run()
    a = Api.__new__(Api)
    a.c, a.tokens = c, {}
    a.client = TestClient(create_app(c.ledger, Settings(
        db_url=db_url, public_host="ayni.test", public_uri="https://ayni.test", secret_file=str(tmp_path / "k"),
        anchor_contract=chain.contract_address)))
    try:
        ana_opened = 2
        assert get(a, f"/v1/receipts/{ana_opened}", "ana").status_code == 200
        refused = get(a, f"/v1/receipts/{frozen}", "ana", "research")
        assert refused.status_code == 403 and c.addr("bea") not in refused.text
        assert "a party of this entry" in refused.json()["error"]["message"]
        assert get(a, f"/v1/receipts/{frozen}", "treasurer", "reconciliation").status_code == 200
        assert get(a, "/v1/receipts/1", "treasurer", "reconciliation").status_code == 200  # the genesis
        assert get(a, "/v1/receipts/999", "treasurer", "reconciliation").json()["error"]["code"] == "unknown_entry"
        assert get(a, "/v1/receipts/999", "ana", "research").json()["error"] == refused.json()["error"]
        assert [(r["subject"], r["resource"]) for r in access_rows(a, "ana")] == [
            ("all members", "GET /v1/receipts/{seq}")]  # the genesis only
        assert get(a, f"/v1/receipts/{limit}", "treasurer", "reconciliation").status_code == 200
        bea, _ = Access(c.ledger, load_policy(), Preferences(c.ledger, load_policy())).log_for(c.addr("bea"))
        assert [(r.accessor, r.subject, r.basis) for r in bea if r.subject != "*"] == [
            (c.treasurer, c.addr("bea"), "policy")] * 2  # the SetStatus and the SetLimit
    finally:
        a.client.close()
        c.dispose()
