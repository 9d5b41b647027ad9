"""Damaged stored state is the server's fault, reported as integrity_violation (500) with
nothing written: never a client's 4xx, never acted upon, never written over (a posting onto a
head that names no entry would leave a gap in the log)."""
import pytest

from ledger import signing
from ledger.core import errors as E

from .test_api import Api


@pytest.fixture
def api(db_url, tmp_path):
    a = Api(db_url, tmp_path)
    for n in ("ana", "bea"):
        a.c.member(n)
    yield a
    a.client.close()
    a.c.dispose()


def alter(api, sql, *params):
    if api.c.ledger.engine.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    with api.c.ledger.engine.begin() as conn:
        conn.exec_driver_sql(sql, params)


def integrity_violation(r):
    assert r.status_code == 500, r.text
    assert r.json()["error"]["code"] == "integrity_violation"


@pytest.mark.parametrize("sql", ["UPDATE ledger_head SET seq = seq + 5",
                                 "UPDATE entries SET chain_hash = entry_hash WHERE seq = (SELECT seq FROM ledger_head)",
                                 # moved back consistently: its entry exists with that hash, but a later one too
                                 "UPDATE ledger_head SET seq = seq - 1, chain_hash = (SELECT chain_hash FROM entries "
                                 "WHERE seq = (SELECT seq - 1 FROM ledger_head))"])
def test_a_head_that_names_no_entry_is_refused_and_nothing_written(api, sql):
    api.c.ledger.submit(api.c.pay("ana", "bea", 5))
    api.h("ana")  # signed in before the damage
    alter(api, sql)
    before = api.c.snapshot()
    with pytest.raises(E.IntegrityViolation):
        api.c.ledger.submit(api.c.pay("ana", "bea", 1))
    body = signing.transfer_json(api.c.pay("ana", "bea", 2))
    integrity_violation(api.client.post("/v1/transfers", json=body, headers=api.h("ana")))
    assert api.c.snapshot() == before


def test_an_unknown_stored_status_is_not_a_403(api):
    headers = api.h("ana")
    alter(api, "UPDATE accounts SET status = 'weird' WHERE address = " + "?",
          api.c.addr("ana"))
    integrity_violation(api.client.get(f"/v1/accounts/{api.c.addr('ana')}", headers=headers))


def test_an_unknown_stored_role_gets_no_sign_in_token(api):
    alter(api, "UPDATE accounts SET role = 'xx' WHERE address = " + "?",
          api.c.addr("ana"))
    with pytest.raises(AssertionError, match="integrity_violation"):
        api.sign_in("ana")


def test_an_unparseable_entry_body_is_an_integrity_violation(api):
    headers = {**api.h("treasurer"), "Ayni-Purpose": "reconciliation"}
    assert api.client.get("/v1/log", headers=headers).status_code == 200
    alter(api, "UPDATE entries SET body = '{not json' WHERE seq = 2")
    integrity_violation(api.client.get("/v1/log", headers=headers))
