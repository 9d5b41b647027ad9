"""Stateful fuzzing of the service (hypothesis RuleBasedStateMachine): open accounts, set
limits, transfers valid and invalid, retries, nonce reuse, forged and expired signatures,
freezes and closes, memo erasure, anchoring on the embedded EVM. After every step, every
invariant of the design (docs/ledger-model.md) is checked against the database and against
an independent model written from the rules' prose, not from ledger.core.rules:
1. each currency sums to 0;  2. a posted transfer leaves both balances within the limits
in force;  3. replaying the log reproduces every stored balance (Ledger.verify);  4. seq
has no gaps and the hash chain links (Ledger.verify);  5. every confirmed anchor's on-chain
root equals the root recomputed from the stored entries;  6. nothing personal (memos,
names) is in any transaction or log on the chain.
SQLite only: the SQL is shared with PostgreSQL, which tests/test_bank.py covers under load."""
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, multiple, precondition, rule

from ledger import signing
from ledger.community import new_genesis
from ledger.core import errors as E
from ledger.core.state import Genesis
from ledger.core.typed_data import address_of_key
from ledger.requests import PaymentRequests
from ledger.service import Ledger

try:  # retention/erasure (ledger/privacy) when present; request memos are erasable regardless
    from ledger.privacy.retention import erase_member
except ImportError:  # pragma: no cover
    erase_member = None

CURRENCIES = ("HOUR", "CRED")
TREASURER = signing.new_key()
_TEMPLATE: dict = {}


def template_db() -> tuple[Path, Genesis]:
    """One initialised SQLite file per session, copied per example (migrations are slow-ish)."""
    if not _TEMPLATE:
        d = Path(tempfile.mkdtemp(prefix="ayni-sm-"))
        ledger = Ledger.open(f"sqlite:///{d}/t.db")
        ledger.initialise(new_genesis("Fuzz coop", address_of_key(TREASURER)))
        _TEMPLATE.update(path=d / "t.db", genesis=ledger.genesis)
        ledger.engine.dispose()
    return _TEMPLATE["path"], _TEMPLATE["genesis"]


class Model:
    """What the ledger should hold, in plain dicts, with every reason a request must be refused."""

    def __init__(self, genesis: Genesis):
        self.g = genesis
        self.status = {genesis.treasurer: "active"}
        self.pos = {}  # (address, currency) -> [balance, limit, ceiling]
        self._open(genesis.treasurer, "treasurer")

    def _open(self, addr, role):
        self.status[addr] = "active"
        for c in CURRENCIES:
            limit, ceiling = self.g.default_for(c, role)
            self.pos[(addr, c)] = [0, limit, ceiling]

    def transfer_refusals(self, payer, payee, cur, amount, *, expired=False) -> set[str]:
        why = set()
        if cur not in CURRENCIES:
            why.add("unknown_currency")
        if payer == payee:
            why.add("same_payer_payee")
        if expired:
            why.add("expired")
        for a in (payer, payee):
            if a not in self.status:
                why.add("unknown_account")
            elif self.status[a] != "active":
                why.add("account_not_active")
        if not why:
            bal, limit, _ = self.pos[(payer, cur)]
            if bal - amount < -limit:
                why.add("credit_limit_exceeded")
            pbal, _, ceiling = self.pos[(payee, cur)]
            if ceiling is not None and pbal + amount > ceiling:
                why.add("ceiling_exceeded")
        return why

    def apply_transfer(self, payer, payee, cur, amount):
        self.pos[(payer, cur)][0] -= amount
        self.pos[(payee, cur)][0] += amount


class LedgerMachine(RuleBasedStateMachine):
    members = Bundle("members")
    posted = Bundle("posted")

    def __init__(self):
        super().__init__()
        src, genesis = template_db()
        self.dir = Path(tempfile.mkdtemp(prefix="ayni-sm-ex-"))
        shutil.copy(src, self.dir / "l.db")
        self.ledger = Ledger.open(f"sqlite:///{self.dir}/l.db")
        self.domain = genesis.domain
        self.model = Model(genesis)
        self.keys: dict[str, bytes] = {}
        self.refused: list = []          # (submission, expected refusal reasons) to retry later
        self.memos: dict[int, str] = {}  # seq -> memo text the ledger should still hold
        self.secrets: set[str] = set()   # every memo and name ever used: must never reach the chain
        self.chain = self.anchoring = None

    def teardown(self):
        event(f"log length {len(list(self.ledger.iter_entries())) // 10 * 10}+")
        self.ledger.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------
    def submit(self, sub, expect_refusal: set[str] | None):
        """Submit; when the model expects a refusal, the ledger must refuse for one of its reasons
        and change nothing; otherwise it must post."""
        head = self.ledger.head()
        try:
            posted = self.ledger.submit(sub)
        except E.LedgerError as exc:
            assert expect_refusal, f"refused {exc.code}: {exc} but the model accepts it"
            assert exc.code in expect_refusal, (exc.code, expect_refusal)
            assert self.ledger.head() == head
            event(f"refused {exc.code}")
            return None
        assert not expect_refusal, f"posted at {posted.seq}, but the model refuses: {expect_refusal}"
        assert not posted.duplicate and posted.seq == head[0] + 1
        event(f"posted {posted.kind}")
        return posted

    def admin(self, sub, refusal: set[str]):
        return self.submit(sub, refusal)

    # -- accounts ----------------------------------------------------------------------------
    @initialize(target=members)
    def three_members(self):
        return multiple(*(self.open_account("member") for _ in range(3)))

    @rule(target=members, role=st.sampled_from(["member", "member", "shop"]))
    def open_account(self, role):
        key = signing.new_key()
        addr = address_of_key(key)
        self.admin(signing.open_account(TREASURER, self.domain, account=addr, role=role), set())
        self.keys[addr] = key
        self.model._open(addr, role)
        return addr

    @rule(addr=members)
    def open_again(self, addr):
        self.admin(signing.open_account(TREASURER, self.domain, account=addr), {"account_exists"})

    @rule(addr=members, cur=st.sampled_from(CURRENCIES), limit=st.integers(0, 2000),
          ceiling=st.none() | st.integers(0, 3000))
    def set_limit(self, addr, cur, limit, ceiling):
        why = {"account_not_active"} if self.model.status[addr] == "closed" else set()
        sub = signing.set_limit(TREASURER, self.domain, account=addr, currency=cur, credit_limit=limit,
                                ceiling=ceiling)
        if self.admin(sub, why):
            self.model.pos[(addr, cur)][1:] = [limit, ceiling]

    @rule(addr=members, other=members)
    def admin_signed_by_a_member(self, addr, other):
        sub = signing.set_status(self.keys[other], self.domain, account=addr, status="frozen")
        self.admin(sub, {"not_authorised"})

    @rule(addr=members, status=st.sampled_from(["frozen", "active", "active", "closed"]))
    def set_status(self, addr, status):
        now = self.model.status[addr]
        why = set()
        if now == "closed" or now == status:
            why.add("invalid_transition")
        if status == "closed" and any(self.model.pos[(addr, c)][0] for c in CURRENCIES):
            why.add("invalid_transition")
        if self.admin(signing.set_status(TREASURER, self.domain, account=addr, status=status), why):
            self.model.status[addr] = status

    # -- transfers ---------------------------------------------------------------------------
    @rule(target=posted, payer=members, payee=members, cur=st.sampled_from(CURRENCIES + ("EUR",)),
          amount=st.integers(1, 2500), memo=st.none() | st.sampled_from(["home visit", "bread", "ride to clinic"]))
    def transfer(self, payer, payee, cur, amount, memo):
        if memo:
            memo = f"{memo} #{len(self.secrets)}"
            self.secrets.add(memo)
        sub = signing.transfer(self.keys[payer], self.domain, payee=payee, currency=cur, amount=amount, memo=memo)
        why = self.model.transfer_refusals(payer, payee, cur, amount)
        p = self.submit(sub, why)
        if p is None:
            self.refused.append(sub)
            return multiple()  # nothing posted, nothing to retry as a duplicate
        self.model.apply_transfer(payer, payee, cur, amount)
        if memo:
            self.memos[p.seq] = memo
        return (sub, p.seq)

    # two more ways in, with amounts that mostly fit: most steps should move money
    @rule(target=posted, payer=members, payee=members, cur=st.sampled_from(CURRENCIES), amount=st.integers(1, 400))
    def pay(self, payer, payee, cur, amount):
        return self.transfer(payer, payee, cur, amount, None)

    @rule(target=posted, payer=members, payee=members, amount=st.integers(1, 300))
    def pay_with_memo(self, payer, payee, amount):
        return self.transfer(payer, payee, "HOUR", amount, "visit")

    @rule(payer=members, payee=members, amount=st.integers(1, 100))
    def transfer_to_a_stranger_or_expired(self, payer, payee, amount):
        stranger = address_of_key(signing.new_key())
        self.submit(signing.transfer(self.keys[payer], self.domain, payee=stranger, currency="HOUR",
                                     amount=amount), self.model.transfer_refusals(payer, stranger, "HOUR", amount))
        sub = signing.transfer(self.keys[payer], self.domain, payee=payee, currency="HOUR", amount=amount,
                               valid_for=-10)
        self.submit(sub, self.model.transfer_refusals(payer, payee, "HOUR", amount, expired=True))

    @rule(payer=members, payee=members, amount=st.integers(1, 100))
    def forged(self, payer, payee, amount):
        """Signed by someone else than the payer: refused, whatever the balances."""
        sub = signing.transfer(self.keys[payee], self.domain, payee=payee, currency="HOUR", amount=amount)
        forged = replace(sub, action=replace(sub.action, payer=payer))
        # payer == payee: the "forger" is the payer, and it is a payment to oneself
        why = self.model.transfer_refusals(payer, payee, "HOUR", amount) if payer == payee else {"wrong_signer"}
        self.submit(forged, why)

    @rule(item=posted)
    def retry_posted(self, item):
        """The same signed transfer again: the original seq, nothing new in the log."""
        sub, seq = item
        head = self.ledger.head()
        again = self.ledger.submit(sub)
        assert again.duplicate and again.seq == seq and self.ledger.head() == head

    @rule(item=posted, amount=st.integers(1, 50))
    def reuse_nonce(self, item, amount):
        sub, _ = item
        t = sub.action
        other = signing.transfer(self.keys[t.payer], self.domain, payee=t.payee, currency=t.currency,
                                 amount=t.amount + amount, nonce=t.nonce)
        self.submit(other, {"nonce_reused"})

    @precondition(lambda self: self.refused)
    @rule(data=st.data())
    def retry_refused(self, data):
        """A refused transfer, sent again later: judged afresh on today's balances."""
        sub = self.refused.pop(data.draw(st.integers(0, len(self.refused) - 1)))
        t = sub.action
        why = self.model.transfer_refusals(t.payer, t.payee, t.currency, t.amount)
        if self.submit(sub, why):
            self.model.apply_transfer(t.payer, t.payee, t.currency, t.amount)

    # -- personal data -----------------------------------------------------------------------
    @rule(payee=members, payer=members, name=st.sampled_from(["Doña Rosa", "Don Julio"]))
    def request_then_erase_its_memo(self, payee, payer, name):
        reqs = PaymentRequests(self.ledger)
        memo = f"for {name} #{len(self.secrets)}"
        self.secrets.add(memo)
        try:
            r = reqs.create(payee=payee, payer=payer, currency="HOUR", amount=5, memo=memo, expires_in_s=600)
        except E.LedgerError as exc:
            assert payee == payer or "active" != self.model.status[payee] or "active" != self.model.status[payer], exc
            return
        assert payee != payer and self.model.status[payee] == self.model.status[payer] == "active"
        assert reqs.get(r.id).memo == memo
        reqs.erase_memo(r.id)
        assert reqs.get(r.id).memo is None

    @precondition(lambda self: erase_member is not None)
    @rule(addr=members)
    def erase_members_memos(self, addr):
        erased = erase_member(self.ledger, addr, profile=True)
        event(f"erased memos: {min(erased.memos, 1)}+")
        from ledger.store import tables as T
        from sqlalchemy import select
        with self.ledger.engine.connect() as conn:
            theirs = {r.seq for r in conn.execute(select(T.transfers.c.seq).where(
                (T.transfers.c.payer == addr) | (T.transfers.c.payee == addr)))}
        for seq in theirs:
            self.memos.pop(seq, None)

    @rule(addr=members, name=st.sampled_from(["Rosa Quispe", "Julio Mamani"]))
    def set_profile(self, addr, name):
        self.ledger.set_profile(addr, display_name=name, contact=f"{name.split()[0].lower()}@example.org")
        self.secrets.add(name)

    # -- anchoring ---------------------------------------------------------------------------
    @rule()
    def anchor(self):
        from ledger.anchoring import Anchoring
        from ledger.chain import AnchorChain
        if self.chain is None:
            self.chain = AnchorChain.embedded()
            self.chain.deploy()
            self.anchoring = Anchoring(self.ledger, self.chain, max_batch=7)
        report = self.anchoring.run()
        event("anchored")
        assert not report.errors and report.anchored_through == self.ledger.head()[0]

    # -- invariants, after every step ----------------------------------------------------------
    @invariant()
    def balances_match_the_model_and_sum_to_zero(self):
        got = self.ledger.positions()
        assert {k: [p.balance, p.credit_limit, p.ceiling] for k, p in got.items()} == self.model.pos
        for c in CURRENCIES:
            assert sum(p.balance for (a, cur), p in got.items() if cur == c) == 0
        assert {a.address: a.status for a in self.ledger.accounts()} == self.model.status

    @invariant()
    def log_replays_and_chain_links(self):
        report = self.ledger.verify()
        assert report.ok, report

    @invariant()
    def memos_kept_until_erased(self):
        for seq, memo in self.memos.items():
            assert self.ledger.memo(seq) == memo

    @invariant()
    def anchors_match_the_log_and_leak_nothing(self):
        if self.anchoring is None:
            return
        for b in self.anchoring.batches(include_failed=False):
            assert b["status"] == "confirmed"
            event = self.chain.find_batch(b["first_seq"])
            assert event is not None and event.last_seq == b["last_seq"]
            assert event.root == bytes(b["root"]) == self.anchoring.tree(b["first_seq"], b["last_seq"]).root
        from .chain_helpers import transcript
        blob = b"".join(transcript(self.chain))
        for s in self.secrets:
            assert s.encode() not in blob


# CI budget (~20-30 s): few examples of 25 steps; no shrinking unless asked (AYNI_SM_SHRINK=1), as
# shrinking a long failing run can take minutes: the failing steps and the seed are printed anyway.
LedgerMachine.TestCase.settings = settings(max_examples=int(os.environ.get("AYNI_SM_EXAMPLES", 15)),
                                           stateful_step_count=80, deadline=None,
                                           phases=[p for p in Phase if p != Phase.shrink or os.environ.get("AYNI_SM_SHRINK")],
                                           suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.filter_too_much])
test_ledger_state_machine = pytest.mark.slow(LedgerMachine.TestCase)


@pytest.fixture(autouse=True, scope="module")
def _cleanup_template():
    yield
    if _TEMPLATE:
        shutil.rmtree(_TEMPLATE["path"].parent, ignore_errors=True)
