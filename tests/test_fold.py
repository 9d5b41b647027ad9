"""The one fold over the log (ledger.core.fold): one record and one rule per entry kind, run
by posting, `ayni verify`, reconciliation and replay alike, reporting one Finding type."""
import json
from dataclasses import replace

import pytest

from ledger import signing
from ledger.core import errors as E
from ledger.core import fold
from ledger.core.findings import Finding
from ledger.core.records import Signed
from ledger.core.reconcile import Discrepancy, Reconciler
from ledger.core.vocab import Kind, Role, Status
from ledger.log_export import export_log
from wallet_cli.reconcile import reconcile

from .conftest import Community


def _community(tmp_path) -> Community:
    c = Community(f"sqlite:///{tmp_path}/a.db")
    c.member("ana")
    c.member("bea")
    c.member("cho", role=Role.SHOP)
    c.ledger.submit(signing.set_limit(c.treasurer_key, c.domain, account=c.addr("cho"), currency="CRED",
                                      credit_limit=9, ceiling=None))
    c.ledger.submit(signing.set_status(c.treasurer_key, c.domain, account=c.addr("cho"), status=Status.FROZEN))
    c.ledger.submit(signing.set_status(c.treasurer_key, c.domain, account=c.addr("cho"), status=Status.ACTIVE))
    return c


def test_one_wrong_rule_makes_posting_verify_and_reconcile_all_disagree_with_the_log(tmp_path, monkeypatch):
    """Prove there is one place: replace the transfer rule in the fold's registry with a wrong
    one ("no transfer above 20") and every path that applies rules changes its mind together."""
    c = _community(tmp_path)
    big = c.ledger.submit(c.pay("ana", "bea", 30)).seq  # lawful under the real rule
    c.ledger.submit(c.pay("ana", "bea", 5))
    path = tmp_path / "log.jsonl"
    export_log(c.ledger, path)
    assert c.ledger.verify().ok
    assert reconcile(export=path, workers=0, skip_chain=True).ok

    real = fold.REGISTRY[Kind.TRANSFER_POSTED]

    def capped(state, at_ms, transfer, signer):
        if transfer.amount > 20:
            raise E.CreditLimitExceeded("no transfer above 20 (a deliberately wrong rule)")
        real.rule(state, at_ms, transfer, signer)

    monkeypatch.setitem(fold.REGISTRY, Kind.TRANSFER_POSTED, replace(real, rule=capped))

    with pytest.raises(E.CreditLimitExceeded, match="wrong rule"):  # posting
        c.ledger.submit(c.pay("ana", "bea", 30))
    c.ledger.submit(c.pay("ana", "bea", 20))  # the wrong rule still lets small transfers through

    report = c.ledger.verify()  # `ayni verify`
    assert not report.ok
    (fault,) = report.replay_faults
    assert (fault.code, fault.seq) == ("rules", big) and "wrong rule" in fault.found

    rec = reconcile(export=path, workers=0, skip_chain=True)  # `ayni-wallet reconcile`
    assert not rec.ok
    assert [(d.check, d.seq) for d in rec.discrepancies if d.check == "rules"] == [("rules", big)]
    assert "wrong rule" in rec.discrepancies[0].found

    with pytest.raises(E.IntegrityViolation, match="wrong rule"):  # replay
        fold.replay(c.ledger.iter_entries())

    monkeypatch.undo()
    assert c.ledger.verify().ok and fold.replay(c.ledger.iter_entries()).seq == c.ledger.head()[0]


def test_every_kind_has_one_record_and_one_rule_and_bodies_round_trip(tmp_path):
    c = _community(tmp_path)
    c.ledger.submit(c.pay("ana", "bea", 3, memo="tea"))
    assert set(fold.REGISTRY) == set(Kind)
    # federation kinds are not submitted actions (the node writes them); their bodies round-trip
    # in tests/test_federation_ledger.py
    federation = {Kind.ALLIANCE_RECORDED, Kind.ALLIANCE_STATUS, Kind.REMOTE_PREPARED, Kind.REMOTE_COMMITTED,
                  Kind.REMOTE_ABORTED}
    assert set(fold.KIND_OF.values()) == {k.value for k in Kind} - {Kind.COMMUNITY_CREATED} - federation
    seen = set()
    for e in c.ledger.iter_entries():
        record = fold.decode(e.kind, e.body)
        assert record.KIND == e.kind and record.body() == e.body
        if isinstance(record, Signed):
            assert fold.action_body(record.action, record.signer, record.signature, record.digest) == e.body
        seen.add(e.kind)
    assert seen == set(Kind) - federation


def test_a_non_canonical_body_is_one_finding_for_every_verifier(tmp_path):
    c = _community(tmp_path)
    seq = c.ledger.submit(c.pay("ana", "bea", 7)).seq
    entries = list(c.ledger.iter_entries())
    state = fold.LedgerState()
    for e in entries[:-1]:
        assert fold.apply(state, e) is state
    body = {**entries[-1].body, "amount": "7"}  # the same number, as text: not the canonical body
    finding = fold.step(state, seq, Kind.TRANSFER_POSTED, entries[-1].at, body)
    assert isinstance(finding, Finding) and (finding.code, finding.seq) == ("rules", seq)
    assert finding.account == c.addr("ana") and state.seq == seq - 1  # nothing applied
    extra = fold.step(state, seq, Kind.TRANSFER_POSTED, entries[-1].at, {**entries[-1].body, "x": 1})
    assert isinstance(extra, Finding) and "canonical" in extra.detail
    unknown = fold.step(state, seq, "levy.charged", entries[-1].at, {})
    assert isinstance(unknown, Finding) and "unknown entry kind" in unknown.found


def test_the_finding_keeps_the_report_shapes_readers_use():
    f = Finding("balance", 4, "10", "11", account="0xA", currency="HOUR", detail="d")
    assert Discrepancy is Finding and f.check == "balance"
    assert f.as_dict() == {"check": "balance", "seq": 4, "expected": "10", "found": "11", "account": "0xA",
                           "currency": "HOUR", "detail": "d"}
    assert f["account"] == "0xA" and f.get("table") is None and f.get("problem") == "d"
    assert json.dumps(Finding("projection", 2, "a", "b", table="memos").as_dict())
    rec = Reconciler()
    rec.flag("sequence", 3, "seq 3", "seq 5")
    assert rec.report.as_dict()["discrepancies"][0]["check"] == "sequence"


def test_enums_are_the_stored_strings():
    assert Kind.TRANSFER_POSTED == "transfer.posted" and json.dumps(Kind.LIMIT_SET) == '"limit.set"'
    assert [r.value for r in Role] == ["member", "shop", "treasurer", "system", "auditor", "peer"]
    assert [s.value for s in Status] == ["active", "frozen", "closed"]


@pytest.mark.parametrize("body", [[], "text", 5, None, {"community": 1}])
def test_a_body_of_any_shape_is_a_finding_not_a_crash(body):
    for kind in (Kind.COMMUNITY_CREATED, Kind.TRANSFER_POSTED):
        f = fold.step(fold.LedgerState(), 1, kind, 0, body)
        assert isinstance(f, Finding) and f.code == "rules" and f.seq == 1
