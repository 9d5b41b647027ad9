"""A dishonest server against `ayni-wallet reconcile`: it controls the database, its HTTP
answers and its anchoring key, but not the members' keys. Each attack found by review is
replayed here and must be reported (or refused with exit 2), never pass as "OK".

The wallet's real client talks to the real API app in process (TestClient is an httpx
client); the end-to-end path over a real socket is in tests/test_anchoring_node.py."""
import json
import shutil
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from api.app import Settings, create_app
from ledger import signing
from ledger.anchoring import Anchoring
from ledger.chain import AnchorChain
from ledger.community import new_genesis
from ledger.core.typed_data import address_of_key
from ledger.log_export import export_log
from ledger.service import Ledger
from ledger.store import tables as T
from wallet_cli.client import ApiClient
from wallet_cli.export import export as export_books
from wallet_cli.export import entries_from_file
from wallet_cli.reconcile import ReconcileInputError, reconcile

from .conftest import Community
from .test_reconcile import DAY_MS, Coop, found


def client_for(ledger: Ledger, key: bytes, tmp, anchor_contract=None) -> ApiClient:
    app = create_app(ledger, Settings(secret_file=str(tmp / "session.key"), anchor_contract=anchor_contract))
    c = ApiClient("http://testserver", key=key, purpose="reconciliation")
    c._http = TestClient(app, base_url="http://testserver")
    return c


def two_members(url):
    c = Community(url)
    c.member("ana")
    c.member("bea")
    return c


def test_rolled_back_tip_is_reported_and_the_checkpoint_keeps_the_evidence(tmp_path):
    db = tmp_path / "live.db"
    c = two_members(f"sqlite:///{db}")
    c.ledger.submit(c.pay("ana", "bea", 30))
    c.ledger.engine.dispose()
    shutil.copy(db, tmp_path / "backup.db")
    c.ledger.submit(c.pay("ana", "bea", 40))
    ck, pins = tmp_path / "ck.jsonl", tmp_path / "pins.json"
    first = reconcile(client=client_for(c.ledger, c.treasurer_key, tmp_path), checkpoint=ck, workers=0,
                      skip_chain=True, pins_path=pins, treasurer=c.treasurer)
    assert first.ok, first.discrepancies
    kept = ck.read_text()
    restored = Ledger.open(f"sqlite:///{tmp_path}/backup.db")  # the server restores an old backup
    second = reconcile(client=client_for(restored, c.treasurer_key, tmp_path), checkpoint=ck, workers=0,
                       skip_chain=True, pins_path=pins, treasurer=c.treasurer)
    (d,) = found(second, "rollback")
    assert d.seq == first.head_seq and ck.read_text() == kept


def test_history_rewritten_from_a_new_genesis_is_caught_by_the_pins(tmp_path):
    """Same domain, the server's own treasurer key, a member's payment dropped, credit minted
    for a crony, all anchored on a fresh contract the server names."""
    honest = two_members(f"sqlite:///{tmp_path}/honest.db")
    ana, bea = honest.addr("ana"), honest.addr("bea")
    t1, t2 = honest.pay("ana", "bea", 30), honest.pay("ana", "bea", 40)
    for t in (t1, t2):
        honest.ledger.submit(t)
    chain = AnchorChain.embedded()
    chain.deploy()
    Anchoring(honest.ledger, chain).run()
    path, pins = tmp_path / "honest.jsonl", tmp_path / "pins.json"
    export_log(honest.ledger, path, anchor_contract=chain.contract_address)
    assert reconcile(export=path, chain=chain, workers=0, pins_path=pins).ok
    assert json.loads(pins.read_text())["contract"] == chain.contract_address

    server_key, crony_key = signing.new_key(), signing.new_key()
    dom = honest.domain
    forged = Ledger.open(f"sqlite:///{tmp_path}/forged.db")
    forged.initialise(new_genesis("Test coop", address_of_key(server_key), chain_id=dom.chain_id, salt=dom.salt))
    for acct in (ana, bea, address_of_key(crony_key)):
        forged.submit(signing.open_account(server_key, dom, account=acct))
    forged.submit(t1)  # t2 never happened
    forged.submit(signing.transfer(crony_key, dom, payee=ana, currency="HOUR", amount=500))
    honest_contract = chain.contract_address
    chain.deploy()  # a fresh contract on the same chain, anchored with the server's key
    assert chain.contract_address != honest_contract
    Anchoring(forged, chain).run()
    fake = tmp_path / "forged.jsonl"
    export_log(forged, fake, anchor_contract=chain.contract_address)
    report = reconcile(export=fake, chain=chain, workers=0, pins_path=pins, treasurer=honest.treasurer)
    assert {(d.check, d.seq) for d in found(report, "trust_root")} >= {("trust_root", 1)}
    assert any("treasurer" in d.detail for d in found(report, "trust_root"))
    assert any("contract" in d.detail for d in found(report, "trust_root"))


def test_a_new_genesis_over_http_is_flagged_and_the_old_checkpoint_kept(tmp_path):
    c = two_members(f"sqlite:///{tmp_path}/live.db")
    c.ledger.submit(c.pay("ana", "bea", 30))
    ck = tmp_path / "ck.jsonl"
    assert reconcile(client=client_for(c.ledger, c.treasurer_key, tmp_path), checkpoint=ck, workers=0,
                     skip_chain=True).ok
    old = ck.read_text()
    other = Community(f"sqlite:///{tmp_path}/other.db")  # the server's own history, letting our key in
    other.ledger.submit(signing.open_account(other.treasurer_key, other.domain, account=c.treasurer,
                                             role="treasurer"))
    r = reconcile(client=client_for(other.ledger, c.treasurer_key, tmp_path), checkpoint=ck, workers=0,
                  skip_chain=True, treasurer=c.treasurer)
    assert found(r, "trust_root")
    assert (tmp_path / "ck.jsonl.replaced").read_text() == old


def test_backdated_expired_signature_is_flagged(tmp_path):
    now = {"ms": int(time.time() * 1000) - 2 * 3_600_000}  # two hours ago, so nothing is in the future
    c = Community(f"sqlite:///{tmp_path}/a.db", clock=lambda: now["ms"])
    c.member("ana")
    c.member("bea")
    withheld = c.pay("ana", "bea", 45, valid_for=60)  # valid one minute
    now["ms"] += 3_600_000
    c.ledger.submit(c.pay("bea", "ana", 5))
    now["ms"] -= 3_600_000 - 1000  # the server steps its clock back to post the lapsed payment
    c.ledger.submit(withheld)
    path = tmp_path / "log.jsonl"
    export_log(c.ledger, path)
    r = reconcile(export=path, workers=0, skip_chain=True)
    assert [d.seq for d in found(r, "clock")] == [c.ledger.head()[0]]


def test_unanchored_tail_restamped_at_zero_is_flagged(tmp_path):
    coop = Coop(f"sqlite:///{tmp_path}/a.db")
    head = coop.c.ledger.head()[0]
    now = coop.c.ledger.clock() + 2 * DAY_MS
    for seq in range(coop.anchored + 1, head + 1):
        coop.write_entry(seq, at=0, rechain=True)
    r = coop.check(tmp_path, now_ms=now)
    assert found(r, "clock") and found(r, "anchor_deadline")


def test_an_old_export_stays_valid_after_anchoring_moves_on(tmp_path):
    coop = Coop(f"sqlite:///{tmp_path}/a.db")
    path = tmp_path / "log.jsonl"
    export_log(coop.c.ledger, path, anchor_contract=coop.chain.contract_address)
    coop.c.ledger.submit(coop.c.pay("ana", "bea", 3))
    Anchoring(coop.c.ledger, coop.chain, max_batch=8).run()
    later = reconcile(export=path, chain=coop.chain, workers=0)
    assert later.ok, later.discrepancies
    assert later.batches_beyond >= 1


def test_non_integer_fields_in_the_sheet_or_the_log(tmp_path):
    coop = Coop(f"sqlite:///{tmp_path}/a.db")
    path = tmp_path / "log.jsonl"
    export_log(coop.c.ledger, path, anchor_contract=coop.chain.contract_address)
    lines = path.read_text().splitlines(keepends=True)
    end = json.loads(lines[-1])
    end["end"]["balances"][1]["balance"] += 0.9
    lines[-1] = json.dumps(end) + "\n"
    path.write_text("".join(lines))
    assert found(reconcile(export=path, chain=coop.chain, workers=0), "balance")

    seq = next(s for s in range(2, 40) if coop.row(s).kind == "transfer.posted")
    body = json.loads(coop.row(seq).body)
    body["amount"] = str(body["amount"])  # a non-canonical body, hashes recomputed
    coop.write_entry(seq, body, rechain=True)
    export_log(coop.c.ledger, path, anchor_contract=coop.chain.contract_address)
    assert seq in [d.seq for d in found(reconcile(export=path, chain=coop.chain, workers=0), "rules")]
    from wallet_cli.export import ExportError
    with pytest.raises(ExportError, match="does not hold together"):
        export_books(entries_from_file(path), tmp_path / "x.csv", fmt="csv", start=None, end=None)


class Twisted:
    """The real client, with some answers replaced by a dishonest server's."""

    def __init__(self, real, override):
        self.real, self.override, self.calls, self.address = real, override, 0, real.address

    def get(self, path, params=None, **kw):
        self.calls += 1
        assert self.calls < 200, "the wallet never stops asking"
        return self.override(path, params or {}, self.real.get(path, params, **kw))


ODD_ANSWERS = {
    "sheet without headSeq": lambda p, q, a: {k: v for k, v in a.items() if k != "headSeq"} if p == "/v1/balances" else a,
    "sheet is a list": lambda p, q, a: [] if p == "/v1/balances" else a,
    "headSeq is text": lambda p, q, a: {**a, "headSeq": "four"} if p == "/v1/balances" else a,
    "log page is a list": lambda p, q, a: [] if p == "/v1/log" else a,
    "entry without seq": lambda p, q, a: {**a, "entries": [{k: v for k, v in e.items() if k != "seq"}
                                                           for e in a["entries"]]} if p == "/v1/log" else a,
    "the first page forever": None,  # built in the test: it needs the real first page
}


@pytest.mark.parametrize("case", sorted(ODD_ANSWERS))
def test_odd_server_answers_are_input_errors_not_crashes(tmp_path, case):
    c = two_members(f"sqlite:///{tmp_path}/a.db")
    for i in range(3):
        c.ledger.submit(c.pay("ana", "bea", 5 + i))
    real = client_for(c.ledger, c.treasurer_key, tmp_path)
    if case == "the first page forever":
        first = real.get("/v1/log", {"after": 0, "limit": 2})

        def override(p, q, a):
            return {**first, "nextAfter": 2} if p == "/v1/log" and q.get("limit") != 1 else a
    else:
        override = ODD_ANSWERS[case]
    with pytest.raises(ReconcileInputError):
        reconcile(client=Twisted(real, override), checkpoint=tmp_path / "ck.jsonl", workers=0, skip_chain=True)


def test_malformed_export_trailers_are_input_errors(tmp_path):
    c = two_members(f"sqlite:///{tmp_path}/a.db")
    c.ledger.submit(c.pay("ana", "bea", 5))
    path = tmp_path / "log.jsonl"
    export_log(c.ledger, path)
    lines = path.read_text().splitlines(keepends=True)
    end = json.loads(lines[-1])["end"]
    for change in ({"anchors": []}, {"headSeq": "abc"}, {"balances": {"a": 1}}):
        bad = tmp_path / "bad.jsonl"
        bad.write_text("".join(lines[:-1]) + json.dumps({"end": {**end, **change}}) + "\n")
        with pytest.raises(ReconcileInputError):
            reconcile(export=bad, workers=0, skip_chain=True)
    bad.write_text("".join(lines[:2]) + "5\n" + "".join(lines[2:]))
    with pytest.raises(ReconcileInputError, match="not an entry"):
        reconcile(export=bad, workers=0, skip_chain=True)


def test_an_export_that_cuts_off_part_of_an_anchored_batch_is_caught(tmp_path):
    """Issue 13 defect 4: the server drops the last signed transfer of an anchored batch,
    reverses its balances and moves the head back. Its own audit passes; the export made
    after the anchoring lacks entries the chain commits to, so the batch is not "beyond"."""
    c = two_members(f"sqlite:///{tmp_path}/a.db")
    for i in range(6):
        c.ledger.submit(c.pay("ana", "bea", 5 + i))
    head, _ = c.ledger.head()
    chain = AnchorChain.embedded()
    chain.deploy()
    Anchoring(c.ledger, chain).run()
    assert chain.last_anchored_seq() == head
    dropped = json.loads(_row(c.ledger, head).body)
    with c.ledger.engine.begin() as conn:
        for table in (T.memos, T.transfers, T.signed_actions, T.entries):
            conn.execute(delete(table).where(table.c.seq == head))
        for who, sign in ((dropped["payer"], +1), (dropped["payee"], -1)):
            conn.execute(update(T.balances).where(T.balances.c.address == who, T.balances.c.currency == "HOUR")
                         .values(balance=T.balances.c.balance + sign * dropped["amount"]))
        prev = _row(c.ledger, head - 1, conn)
        conn.execute(update(T.ledger_head).values(seq=head - 1, chain_hash=prev.chain_hash))
    assert c.ledger.verify().ok  # the server's own audit cannot see it
    later = c.ledger.clock() + 3_600_000  # the export is made an hour after the anchoring
    c.ledger.clock = lambda: later
    path = tmp_path / "cut.jsonl"
    export_log(c.ledger, path, anchor_contract=chain.contract_address)
    report = reconcile(export=path, chain=chain, workers=0)
    assert not report.ok and report.batches_beyond == 0
    (d,) = found(report, "anchor_root")
    assert d.found == f"the log ends at seq {head - 1}" and "before this log was made" in d.detail


def _row(ledger, seq, conn=None):
    if conn is None:
        with ledger.engine.connect() as conn:
            return _row(ledger, seq, conn)
    return conn.execute(select(T.entries).where(T.entries.c.seq == seq)).one()
