"""The ledger service on a real database (SQLite, and PostgreSQL where marked)."""
import time

import pytest
from sqlalchemy import text

from ledger import signing
from ledger.core import errors as E
from ledger.core.hashing import keccak256
from ledger.core.typed_data import Domain, Transfer, address_of_key, sign_action
from ledger.service import Submission


def test_transfer_moves_money_and_logs_one_entry(community):
    c = community
    c.member("ana"), c.member("bea")
    before = c.ledger.head()[0]
    posted = c.ledger.submit(c.pay("ana", "bea", 90, memo="garden help"))
    assert (posted.seq, posted.duplicate, posted.kind) == (before + 1, False, "transfer.posted")
    assert c.balance("ana") == -90 and c.balance("bea") == 90
    assert c.ledger.memo(posted.seq) == "garden help"
    entry = list(c.ledger.iter_entries(after_seq=before))[0]
    assert entry.body["amount"] == 90 and "garden" not in str(entry.body)  # memo stays off the log
    assert c.ledger.verify().ok


def test_retry_is_idempotent_and_writes_nothing(community):
    c = community
    c.member("ana"), c.member("bea")
    sub = c.pay("ana", "bea", 30)
    first = c.ledger.submit(sub)
    snap = c.snapshot()
    again = c.ledger.submit(sub)
    assert again.duplicate and again.seq == first.seq and again.digest == first.digest
    assert c.snapshot() == snap


def test_same_message_with_a_fresh_signature_is_still_a_retry(community):
    c = community
    c.member("ana"), c.member("bea")
    sub = c.pay("ana", "bea", 30)
    c.ledger.submit(sub)
    # same typed data, the signature re-encoded with v in 0/1 form: one message, one effect
    raw = bytes.fromhex(sub.signature[2:])
    resigned = Submission(sub.action, "0x" + (raw[:64] + bytes([raw[64] - 27])).hex())
    assert c.ledger.submit(resigned).duplicate


def test_reused_nonce_for_another_message_is_a_conflict(community):
    c = community
    c.member("ana"), c.member("bea")
    sub = c.pay("ana", "bea", 30)
    c.ledger.submit(sub)
    snap = c.snapshot()
    with pytest.raises(E.NonceReused):
        c.ledger.submit(c.pay("ana", "bea", 31, nonce=sub.action.nonce))
    assert c.snapshot() == snap


def _refusal_cases(c):
    """(label, submission, expected error class) for every kind of bad transfer."""
    ana, bea = c.addr("ana"), c.addr("bea")
    key = c.keys["ana"]
    mk = lambda **kw: Transfer.create(**{"payer": ana, "payee": bea, "currency": "HOUR", "amount": 30,
                                        "nonce": signing.new_nonce(), "valid_until": int(time.time()) + 60, **kw})
    signed = lambda t, k=key, d=c.domain: Submission(t, sign_action(k, d, t))
    stranger = signing.new_key()
    other_domain = Domain(chain_id=c.domain.chain_id, salt=keccak256(b"elsewhere"))
    good_memo = c.pay("ana", "bea", 30, memo="hello")
    return [
        ("over credit limit", signed(mk(amount=601)), E.CreditLimitExceeded),
        ("unknown currency", signed(mk(currency="EUR")), E.UnknownCurrency),
        ("payer is payee", signed(mk(payee=ana)), E.SamePayerPayee),
        ("unknown payee", signed(mk(payee=address_of_key(stranger))), E.UnknownAccount),
        ("unknown payer", signed(mk(payer=address_of_key(stranger)), stranger), E.UnknownAccount),
        ("wrong signer", signed(mk(), stranger), E.WrongSigner),
        ("other community", signed(mk(), key, other_domain), E.WrongSigner),
        ("expired", signed(mk(valid_until=int(time.time()) - 5)), E.Expired),
        ("garbage signature", Submission(mk(), "0x" + "ab" * 65), E.BadSignature),
        ("memo swapped", Submission(good_memo.action, good_memo.signature, "other memo", good_memo.memo_salt),
         E.MemoMismatch),
    ]


def test_every_bad_transfer_is_refused_with_its_own_code_and_writes_nothing(community):
    c = community
    c.member("ana"), c.member("bea")
    c.ledger.submit(c.pay("ana", "bea", 10))
    snap = c.snapshot()
    codes = set()
    for label, sub, err in _refusal_cases(c):
        with pytest.raises(err) as exc:
            c.ledger.submit(sub)
        codes.add(exc.value.code)
        assert c.snapshot() == snap, label
    assert len(codes) == 8  # distinct, machine-readable reasons
    assert c.ledger.verify().ok


def test_ceiling_and_limits_hold_at_the_edges(community):
    c = community
    c.member("ana"), c.member("bea"), c.member("cho"), c.member("dan")
    c.ledger.submit(c.pay("ana", "bea", 600))  # exactly the 10 h credit limit
    assert c.balance("ana") == -600
    with pytest.raises(E.CreditLimitExceeded, match="can still spend 0m"):
        c.ledger.submit(c.pay("ana", "bea", 1))
    c.ledger.submit(c.pay("cho", "bea", 600))
    c.ledger.submit(signing.set_limit(c.treasurer_key, c.domain, account=c.addr("bea"), currency="HOUR",
                                      credit_limit=600, ceiling=1200))
    with pytest.raises(E.CeilingExceeded):
        c.ledger.submit(c.pay("dan", "bea", 1))
    assert c.balance("bea") == 1200 and c.balance("dan") == 0


def test_frozen_accounts_can_neither_pay_nor_be_paid_until_unfrozen(community):
    c = community
    c.member("ana"), c.member("bea")
    c.ledger.submit(signing.set_status(c.treasurer_key, c.domain, account=c.addr("bea"), status="frozen"))
    with pytest.raises(E.AccountNotActive, match="payee"):
        c.ledger.submit(c.pay("ana", "bea", 5))
    with pytest.raises(E.AccountNotActive, match="payer"):
        c.ledger.submit(c.pay("bea", "ana", 5))
    c.ledger.submit(signing.set_status(c.treasurer_key, c.domain, account=c.addr("bea"), status="active"))
    c.ledger.submit(c.pay("bea", "ana", 5))
    assert c.ledger.verify().ok


def test_only_an_active_treasurer_administers(community):
    c = community
    c.member("ana"), c.member("bea")
    with pytest.raises(E.NotAuthorised):
        c.ledger.submit(signing.open_account(c.keys["ana"], c.domain, account=address_of_key(signing.new_key())))
    with pytest.raises(E.NotAuthorised):
        c.ledger.submit(signing.set_limit(c.keys["ana"], c.domain, account=c.addr("ana"), currency="HOUR",
                                          credit_limit=10**6))
    with pytest.raises(E.AccountExists):
        c.ledger.submit(signing.open_account(c.treasurer_key, c.domain, account=c.addr("ana")))
    with pytest.raises(E.InvalidTransition):
        c.ledger.submit(signing.set_status(c.treasurer_key, c.domain, account=c.treasurer, status="frozen"))


def test_closing_requires_settled_balances_and_is_final(community):
    c = community
    c.member("ana"), c.member("bea")
    c.ledger.submit(c.pay("ana", "bea", 60))
    with pytest.raises(E.InvalidTransition, match="non-zero"):
        c.ledger.submit(signing.set_status(c.treasurer_key, c.domain, account=c.addr("ana"), status="closed"))
    c.ledger.submit(c.pay("bea", "ana", 60))
    c.ledger.submit(signing.set_status(c.treasurer_key, c.domain, account=c.addr("ana"), status="closed"))
    with pytest.raises(E.InvalidTransition, match="final"):
        c.ledger.submit(signing.set_status(c.treasurer_key, c.domain, account=c.addr("ana"), status="active"))
    assert c.ledger.verify().ok


def test_batch_posting_is_atomic_per_transfer(community):
    c = community
    c.member("ana"), c.member("bea")
    good1, good2 = c.pay("ana", "bea", 100), c.pay("bea", "ana", 50)
    results = c.ledger.submit_many([good1, c.pay("ana", "bea", 10_000), good2, good1])
    assert isinstance(results[1], E.CreditLimitExceeded)
    assert not results[0].duplicate and not results[2].duplicate
    assert results[3].duplicate and results[3].seq == results[0].seq
    assert results[2].seq == results[0].seq + 1  # a refusal leaves no gap
    assert c.balance("ana") == -50
    assert c.ledger.verify().ok


def test_verify_finds_tampering_in_the_database(community):
    c = community
    c.member("ana"), c.member("bea")
    for _ in range(3):
        c.ledger.submit(c.pay("ana", "bea", 10))
    with c.ledger.engine.begin() as conn:
        conn.execute(text("UPDATE balances SET balance = balance + 5 WHERE address = :a AND currency = 'HOUR'"),
                     {"a": c.addr("bea")})
    report = c.ledger.verify()
    assert not report.ok
    assert report.zero_sum_faults == {"HOUR": 5}
    assert [f["account"] for f in report.balance_faults] == [c.addr("bea")]
    with c.ledger.engine.begin() as conn:
        conn.execute(text("UPDATE balances SET balance = balance - 5 WHERE address = :a AND currency = 'HOUR'"),
                     {"a": c.addr("bea")})
        conn.execute(text("UPDATE entries SET body = replace(body, :old, :new) "
                          "WHERE seq = (SELECT max(seq) FROM entries)"), {"old": '"amount":10', "new": '"amount":11'})
    report = c.ledger.verify()
    assert not report.ok and report.chain_faults[0].seq == c.ledger.head()[0]


def test_uninitialised_database_says_so(db_url):
    from ledger.service import Ledger
    ledger = Ledger.open(db_url)
    with pytest.raises(E.NotInitialised):
        ledger.submit(signing.transfer(signing.new_key(), Domain(1, b"\x00" * 32), payee="0x" + "11" * 20,
                                       currency="HOUR", amount=1))
    ledger.engine.dispose()


def test_initialising_twice_is_refused(community):
    from ledger.community import new_genesis
    with pytest.raises(E.LedgerError) as exc:
        community.ledger.initialise(new_genesis("again", community.treasurer))
    assert exc.value.code == "already_initialised"


def test_a_batch_may_open_an_account_and_use_it_at_once(community):
    """Onboarding in one batch: open, set limits, receive a payment, pay back."""
    c = community
    c.member("ana")
    key = signing.new_key()
    x = address_of_key(key)
    c.keys["xio"] = key
    results = c.ledger.submit_many([
        signing.open_account(c.treasurer_key, c.domain, account=x),
        c.pay("ana", "xio", 90),
        signing.set_limit(c.treasurer_key, c.domain, account=x, currency="CRED", credit_limit=5, ceiling=7),
        signing.transfer(key, c.domain, payee=c.addr("ana"), currency="CRED", amount=6),  # over the new limit
        signing.transfer(key, c.domain, payee=c.addr("ana"), currency="CRED", amount=5),
    ])
    assert isinstance(results[3], E.CreditLimitExceeded)
    assert c.balance("xio") == 90 and c.balance("xio", "CRED") == -5
    assert c.ledger.positions(x)[(x, "CRED")].credit_limit == 5
    assert c.ledger.verify().ok


def test_retry_after_expiry_still_returns_the_original(community, monkeypatch):
    c = community
    c.member("ana"), c.member("bea")
    sub = c.pay("ana", "bea", 30, valid_for=60)
    first = c.ledger.submit(sub)
    later = c.ledger.clock() + 3_600_000
    monkeypatch.setattr(c.ledger, "clock", lambda: later)
    again = c.ledger.submit(sub)
    assert again.duplicate and again.seq == first.seq
    with pytest.raises(E.Expired):
        c.ledger.submit(c.pay("ana", "bea", 30, valid_for=60))


@pytest.mark.parametrize("field,value", [
    ("memo_hash", "0x" + "ab" * 31 + "  "), ("request_id", "0x" + "ab" * 31 + "\n\n"),
    ("payer", "0x" + "!" * 40), ("nonce", "²"), ("amount", "１２"),
])
def test_lookalike_input_is_refused_before_anything_happens(field, value):
    fields = dict(payer="0x" + "11" * 20, payee="0x" + "22" * 20, currency="HOUR", amount=5, nonce=1,
                  valid_until=2**40)
    fields[field] = value
    with pytest.raises(E.InvalidInput):
        Transfer.create(**fields)


def test_signatures_are_stored_in_one_canonical_form(community):
    c = community
    c.member("ana"), c.member("bea")
    sub = c.pay("ana", "bea", 30)
    raw = bytes.fromhex(sub.signature[2:])
    posted = c.ledger.submit(Submission(sub.action, raw[:64] + bytes([raw[64] - 27])))  # bytes, v in 0/1
    entry = list(c.ledger.iter_entries(after_seq=posted.seq - 1))[0]
    assert entry.body["signature"] == sub.signature.lower()
    assert c.ledger.verify().ok


@pytest.mark.parametrize("memo", ["nul\x00byte", "lone \ud800 surrogate", "x" * 501])
def test_unstorable_memos_are_refused(community, memo):
    c = community
    c.member("ana"), c.member("bea")
    sub = c.pay("ana", "bea", 30, memo="placeholder")
    from ledger.core.typed_data import memo_hash as mh
    import secrets
    salt = secrets.token_bytes(32)
    try:
        h = mh(memo, salt)
    except UnicodeEncodeError:
        h = b"\x01" * 32
    t = Transfer.create(payer=sub.action.payer, payee=sub.action.payee, currency="HOUR", amount=30,
                        nonce=signing.new_nonce(), valid_until=2**40, memo_hash=h)
    with pytest.raises(E.InvalidInput):
        c.ledger.submit(Submission(t, sign_action(c.keys["ana"], c.domain, t), memo, salt))


def test_verify_finds_tampered_projections(community):
    c = community
    c.member("ana"), c.member("bea")
    posted = [c.ledger.submit(c.pay("ana", "bea", 10 + i, memo=f"m{i}")) for i in range(4)]
    edits = [
        ("DELETE FROM signed_actions WHERE seq = :s", posted[0].seq, "signed_actions"),
        ("UPDATE transfers SET amount = amount + 1 WHERE seq = :s", posted[1].seq, "transfers"),
        ("UPDATE memos SET memo = 'rewritten' WHERE seq = :s", posted[2].seq, "memos"),
    ]
    for sql, seq, table in edits:
        with c.ledger.engine.begin() as conn:
            conn.execute(text(sql), {"s": seq})
        faults = c.ledger.verify().replay_faults
        assert any(f.get("table") == table and f["seq"] == seq for f in faults), (table, faults)
    with c.ledger.engine.begin() as conn:
        conn.execute(text("UPDATE accounts SET opened_seq = 1 WHERE address = :a"), {"a": c.addr("ana")})
    assert any(f.get("problem", "").startswith("account") for f in c.ledger.verify().balance_faults)


def test_verify_reports_a_corrupt_body_instead_of_crashing(community):
    c = community
    c.member("ana"), c.member("bea")
    c.ledger.submit(c.pay("ana", "bea", 10))
    with c.ledger.engine.begin() as conn:
        conn.execute(text("UPDATE entries SET body = '{not json' WHERE seq = 2"))
    report = c.ledger.verify()
    assert not report.ok and report.chain_faults[0].seq == 2


def test_verify_is_consistent_while_others_post(community):
    import threading
    c = community
    c.member("ana"), c.member("bea")
    subs = [c.pay("ana" if i % 2 else "bea", "bea" if i % 2 else "ana", 1) for i in range(300)]
    done = threading.Event()

    def post():
        for s in subs:
            c.ledger.submit(s)
        done.set()

    t = threading.Thread(target=post)
    t.start()
    reports = []
    while not done.is_set() or not reports:
        reports.append(c.ledger.verify())
    t.join()
    assert all(r.ok for r in reports), [r for r in reports if not r.ok][:1]


def test_a_batch_of_thousands_posts_in_one_call(community):
    """The (signer, nonce) lookup is chunked: SQLite caps an expression's depth at 1000."""
    c = community
    for n in ("ana", "bea"):
        c.member(n)
    batch = [c.pay("ana" if i % 2 else "bea", "bea" if i % 2 else "ana", 1) for i in range(1200)]
    results = c.ledger.submit_many(batch)
    assert not [r for r in results if isinstance(r, E.LedgerError)]
    assert c.ledger.head()[0] == 3 + 1200
    again = c.ledger.submit_many(batch[:300])  # retries are found by the chunked lookup too
    assert all(r.duplicate for r in again) and [r.seq for r in again] == [r.seq for r in results[:300]]
