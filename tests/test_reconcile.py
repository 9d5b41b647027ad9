"""`ayni-wallet reconcile`: the independent check finds every kind of tampering, at its place.

Each case builds a real ledger (SQLite and PostgreSQL), anchors it on the embedded EVM, edits
rows directly in the database (or misuses the anchoring key on chain) the way a dishonest or
broken server would, exports the log the server's way, and reconciles with ledger.core + web3."""
import json

import pytest
from sqlalchemy import delete, insert, select, update

from ledger.anchoring import Anchoring
from ledger.chain import AnchorChain
from ledger.core.entries import Entry, canonical_body
from ledger.core.hashing import keccak256
from ledger.log_export import export_log
from ledger.store import tables as T
from wallet_cli.reconcile import ReconcileInputError, reconcile

from .conftest import Community

DAY_MS = 86_400_000


class Coop:
    """A small anchored ledger: 3 members, 24 transfers, anchored in batches of 8, then 3
    more transfers not anchored yet."""

    def __init__(self, url):
        self.c = c = Community(url)
        for n in ("ana", "bea", "cho"):
            c.member(n)
        for i in range(24):
            payer, payee = [("ana", "bea"), ("bea", "cho"), ("cho", "ana")][i % 3]
            c.ledger.submit(c.pay(payer, payee, 5 + i % 7, memo=f"visit {i}"))
        self.chain = AnchorChain.embedded()
        self.chain.deploy()
        Anchoring(c.ledger, self.chain, max_batch=8).run()
        self.anchored = self.chain.last_anchored_seq()
        for i in range(3):
            c.ledger.submit(c.pay("ana", "cho", 1 + i))
        self.engine = c.ledger.engine

    def row(self, seq):
        with self.engine.connect() as conn:
            return conn.execute(select(T.entries).where(T.entries.c.seq == seq)).one()

    def write_entry(self, seq, body: dict | None = None, *, rechain: bool = False, **cols):
        """Edit entry `seq` (body and/or raw columns); with rechain, recompute its hash and
        every later chain hash, as a careful forger would."""
        with self.engine.begin() as conn:
            if body is not None:
                cols["body"] = canonical_body(body)
            conn.execute(update(T.entries).where(T.entries.c.seq == seq).values(**cols))
            if rechain:
                rows = conn.execute(select(T.entries).where(T.entries.c.seq >= seq).order_by(T.entries.c.seq)).all()
                prev = conn.execute(select(T.entries.c.chain_hash).where(T.entries.c.seq == seq - 1)).scalar()
                for r in rows:
                    e = Entry.make(r.seq, r.kind, r.at, json.loads(r.body), prev)
                    conn.execute(update(T.entries).where(T.entries.c.seq == r.seq)
                                 .values(entry_hash=e.entry_hash, chain_hash=e.chain_hash))
                    prev = e.chain_hash
                conn.execute(update(T.ledger_head).values(chain_hash=prev))

    def check(self, tmp_path, **kw):
        path = tmp_path / "log.jsonl"
        export_log(self.c.ledger, path, anchor_contract=self.chain.contract_address)
        kw.setdefault("chain", self.chain)
        kw.setdefault("workers", 0)  # inline recovery
        return reconcile(export=path, **kw)


@pytest.fixture
def coop(db_url):
    c = Coop(db_url)
    yield c
    c.c.dispose()


def found(report, check):
    return [d for d in report.discrepancies if d.check == check]


def transfer_seqs(coop):
    with coop.engine.connect() as conn:
        return [r.seq for r in conn.execute(select(T.entries.c.seq).where(T.entries.c.kind == "transfer.posted")
                                            .order_by(T.entries.c.seq))]


def test_an_honest_ledger_reconciles(coop, tmp_path):
    report = coop.check(tmp_path)
    assert report.ok, report.discrepancies
    head = coop.c.ledger.head()[0]
    assert report.entries == report.head_seq == head and report.anchored_through == coop.anchored
    assert report.signatures_checked == head - 1 and report.batches_checked == -(-coop.anchored // 8)
    assert report.currencies == {"HOUR": 0, "CRED": 0}
    assert {"signature", "balance", "anchor_root", "anchor_record", "anchor_deadline"} <= set(report.checks_run)


def test_edited_entry_is_found_at_its_seq(coop, tmp_path):
    seq = transfer_seqs(coop)[4]
    body = json.loads(coop.row(seq).body)
    body["amount"] += 100
    coop.write_entry(seq, body)
    report = coop.check(tmp_path)
    assert [d.seq for d in found(report, "entry_hash")] == [seq]
    assert found(report, "rules")[0].seq == seq  # the digest no longer matches the signed fields
    batch = found(report, "anchor_root")
    assert len(batch) == 1 and batch[0].seq <= seq <= batch[0].seq + 7


def test_history_rewritten_with_recomputed_hashes_is_caught_by_the_anchor(coop, tmp_path):
    seq = transfer_seqs(coop)[5]
    body = json.loads(coop.row(seq).body)
    body["payee"], body["payer"] = body["payer"], body["payee"]
    coop.write_entry(seq, body, rechain=True)
    report = coop.check(tmp_path)
    assert not found(report, "entry_hash") and not found(report, "chain_hash")  # a careful forgery
    assert [d.seq for d in found(report, "rules")] == [seq]
    assert len(found(report, "anchor_root")) == 1


def test_forged_entry_signed_by_the_wrong_key_is_caught(coop, tmp_path):
    """The server raises an amount, recomputes the digest and every hash, and signs with a key
    that is not the payer's: only signature recovery can tell (the entry is not anchored yet)."""
    from ledger.core.state import action_from_body
    from ledger.core.typed_data import Transfer, canonical_signature, sign_action
    seq = transfer_seqs(coop)[-1]
    body = json.loads(coop.row(seq).body)
    action, _, _ = action_from_body("transfer.posted", body)
    forged = Transfer.create(payer=action.payer, payee=action.payee, currency=action.currency,
                             amount=action.amount + 1, nonce=action.nonce, valid_until=action.valid_until,
                             memo_hash=action.memo_hash, request_id=action.request_id)
    digest = coop.c.domain.digest(forged.struct_hash())
    body.update(amount=forged.amount, digest="0x" + digest.hex(),
                signature=canonical_signature(sign_action(coop.c.keys["bea"], coop.c.domain, forged)))
    coop.write_entry(seq, body, rechain=True)
    report = coop.check(tmp_path)
    assert [d.seq for d in found(report, "signature")] == [seq]
    assert not found(report, "entry_hash") and not found(report, "chain_hash")


def test_deleted_entry(coop, tmp_path):
    seq = transfer_seqs(coop)[3]
    with coop.engine.begin() as conn:  # the rows that refer to it go too (foreign keys)
        for table in reversed(T.metadata.sorted_tables):
            for fk in table.foreign_keys:
                if fk.column is T.entries.c.seq:
                    conn.execute(delete(table).where(fk.parent == seq))
        conn.execute(delete(T.entries).where(T.entries.c.seq == seq))
    report = coop.check(tmp_path)
    gap = found(report, "sequence")
    assert gap and gap[0].seq == seq + 1 and gap[0].expected == f"seq {seq}"
    assert found(report, "chain_hash")[0].seq == seq + 1


def test_inserted_entry_replaying_a_signed_transfer(coop, tmp_path):
    """A copy of an old signed transfer appended at the end, hashes and head recomputed."""
    head, head_hash = coop.c.ledger.head()
    old = coop.row(transfer_seqs(coop)[0])
    e = Entry.make(head + 1, old.kind, old.at + 10, json.loads(old.body), head_hash)
    with coop.engine.begin() as conn:
        conn.execute(insert(T.entries).values(seq=e.seq, kind=e.kind, at=e.at, body=old.body,
                                              entry_hash=e.entry_hash, chain_hash=e.chain_hash))
        conn.execute(update(T.ledger_head).values(seq=e.seq, chain_hash=e.chain_hash))
    report = coop.check(tmp_path)
    assert [d.seq for d in found(report, "rules")] == [head + 1]
    assert "reused" in found(report, "rules")[0].found


def test_reordered_entries(coop, tmp_path):
    a, b = transfer_seqs(coop)[6:8]
    ra, rb = coop.row(a), coop.row(b)
    with coop.engine.begin() as conn:
        conn.execute(update(T.entries).where(T.entries.c.seq == a).values(body=rb.body, kind=rb.kind, at=rb.at))
        conn.execute(update(T.entries).where(T.entries.c.seq == b).values(body=ra.body, kind=ra.kind, at=ra.at))
    report = coop.check(tmp_path)
    assert [d.seq for d in found(report, "entry_hash")] == [a, b]


def test_edited_and_missing_balances(coop, tmp_path):
    ana, bea = coop.c.addr("ana"), coop.c.addr("bea")
    with coop.engine.begin() as conn:
        conn.execute(update(T.balances).where(T.balances.c.address == ana, T.balances.c.currency == "HOUR")
                     .values(balance=T.balances.c.balance + 30))
        conn.execute(delete(T.balances).where(T.balances.c.address == bea, T.balances.c.currency == "CRED"))
    report = coop.check(tmp_path)
    wrong = [(d.account, d.currency) for d in found(report, "balance")]
    assert (ana, "HOUR") in wrong and (bea, "CRED") in wrong
    assert [d.currency for d in found(report, "zero_sum")] == ["HOUR"]


def test_a_balance_outside_its_limit(coop, tmp_path):
    cho = coop.c.addr("cho")
    with coop.engine.begin() as conn:
        conn.execute(update(T.balances).where(T.balances.c.address == cho, T.balances.c.currency == "HOUR")
                     .values(credit_limit=0, balance=-1))
    report = coop.check(tmp_path)
    assert (cho, "HOUR") in [(d.account, d.currency) for d in found(report, "limit")]


def test_edited_anchor_record(coop, tmp_path):
    with coop.engine.begin() as conn:
        first = conn.execute(select(T.anchor_batches).order_by(T.anchor_batches.c.first_seq)).first()
        conn.execute(update(T.anchor_batches).where(T.anchor_batches.c.id == first.id).values(root=b"\x11" * 32))
    report = coop.check(tmp_path)
    assert [d.seq for d in found(report, "anchor_record")] == [first.first_seq]


def test_wrong_root_anchored_on_chain(coop, tmp_path):
    """The anchoring key commits a root that is not the root of the entries."""
    head = coop.c.ledger.head()[0]
    tx = coop.chain.send_anchor(keccak256(b"not the entries"), coop.anchored + 1, head)
    coop.chain.wait(tx)
    report = coop.check(tmp_path)
    bad = found(report, "anchor_root")
    assert [d.seq for d in bad] == [coop.anchored + 1] and bad[0].expected == "0x" + keccak256(b"not the entries").hex()


def test_entries_left_unanchored_past_the_deadline(coop, tmp_path):
    head = coop.c.ledger.head()[0]
    assert coop.check(tmp_path).ok  # within a day: fine
    late = coop.check(tmp_path, now_ms=coop.c.ledger.clock() + 2 * DAY_MS)
    (d,) = found(late, "anchor_deadline")
    assert d.seq == coop.anchored + 1 and f"{head - coop.anchored} entries" in d.found


def test_truncated_or_foreign_export_is_refused(coop, tmp_path):
    path = tmp_path / "log.jsonl"
    export_log(coop.c.ledger, path, anchor_contract=coop.chain.contract_address)
    lines = path.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:-5]))
    with pytest.raises(ReconcileInputError, match="truncated"):
        reconcile(export=cut, chain=coop.chain, workers=0)
    torn = tmp_path / "torn.jsonl"
    torn.write_text("".join(lines)[:-40])
    with pytest.raises(ReconcileInputError, match="truncated|incomplete"):
        reconcile(export=torn, chain=coop.chain, workers=0)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}\n')
    with pytest.raises(ReconcileInputError, match="not an Ayni log export"):
        reconcile(export=other, chain=coop.chain, workers=0)


def test_signature_recovery_in_worker_processes_finds_the_same(coop, tmp_path):
    seq = transfer_seqs(coop)[2]
    body = json.loads(coop.row(seq).body)
    sig = bytearray.fromhex(body["signature"][2:])
    sig[10] ^= 1
    body["signature"] = "0x" + sig.hex()
    coop.write_entry(seq, body, rechain=True)
    one = coop.check(tmp_path)
    two = coop.check(tmp_path, workers=2)
    assert [d.seq for d in found(one, "signature")] == [d.seq for d in found(two, "signature")] == [seq]
    assert two.signatures_checked == one.signatures_checked


def test_non_ascii_names_take_the_reference_encoder_and_reconcile(tmp_path):
    """The canonical form escapes non-ASCII (\\u00f1); the fast encoder does not, so such
    entries must fall back to the reference encoder rather than be flagged."""
    from ledger import signing
    from ledger.community import new_genesis
    from ledger.core.typed_data import address_of_key
    from ledger.service import Ledger
    treasurer = signing.new_key()
    ledger = Ledger.open(f"sqlite:///{tmp_path}/n.db")
    ledger.initialise(new_genesis("Cuidado Mutuo Ñuñoa — cooperativa", address_of_key(treasurer)))
    ana = signing.new_key()
    ledger.submit(signing.open_account(treasurer, ledger.genesis.domain, account=address_of_key(ana)))
    export_log(ledger, tmp_path / "log.jsonl")
    assert "\\u00d1u\\u00f1oa" in (tmp_path / "log.jsonl").read_text()
    report = reconcile(export=tmp_path / "log.jsonl", workers=0, skip_chain=True)
    assert report.ok, report.discrepancies
    ledger.engine.dispose()
