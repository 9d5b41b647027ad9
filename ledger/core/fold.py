"""The one fold over the log: every entry kind has one record type and one rule, here.

    step(state, seq, kind, at, body) -> Record | Finding

decodes the body into its record (ledger.core.records), requires it to be the canonical
body, re-derives the EIP-712 digest from the stored fields, checks the signature, the
nonce and then the kind's rule, and applies it to `state`; or changes nothing and returns
the one Finding that says why the log is wrong there. `apply(state, entry)` is the same
for an Entry. Posting (ledger.service, through `apply_action`), `ayni verify`
(ledger.audit), reconciliation (ledger.core.reconcile) and replay (`replay`) all run it,
so what the ledger allowed and what every verifier re-checks cannot drift apart.

A new entry kind is one record in ledger/core/records.py, one rule below and one line
in REGISTRY."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from . import errors as E
from . import rules
from .amounts import Currency
from .codec import hex0x
from .findings import Finding
from .refunds import Paid, RefundTransfer, check_refund
from . import federation_rules as F
from .records import (AccountOpened, AllianceRecorded, AllianceStatusSet, FederationRecord, Genesis, LimitSet, Record,
                      RemoteAborted, RemoteCommitted, RemotePrepared, Signed, StatusSet, TransferPosted)
from .typed_data import Action, OpenAccount, SetLimit, SetStatus, Transfer, recover_signer
from .vocab import Role, Status


@dataclass
class LedgerState:
    """Everything the log implies, rebuilt in memory. Mutable on purpose: it is the
    accumulator of the fold, never shared."""

    genesis: Genesis | None = None
    accounts: dict[str, rules.AccountState] = field(default_factory=dict)
    positions: dict[tuple[str, str], rules.Position] = field(default_factory=dict)
    used_nonces: dict[tuple[str, int], bytes] = field(default_factory=dict)
    # federation: alliances by id (as this node sees them) and remote legs by payment id
    alliances: dict = field(default_factory=dict)
    legs: dict = field(default_factory=dict)
    # refunds (ledger.core.refunds): what each posted transfer was, how much of each payment
    # was refunded so far, and the (original seq, refund nonce) pairs used
    paid: dict[int, Paid] = field(default_factory=dict)
    refunded: dict[int, int] = field(default_factory=dict)
    refund_keys: set[tuple[int, int]] = field(default_factory=set)
    # each posted transfer's digest (a refund's signed requestId binds it): kept here, not read
    # back from used_nonces, which a whole-log verifier keeps as a digest-free NonceSet
    paid_digests: dict[int, bytes] = field(default_factory=dict)
    seq: int = 0
    _currencies: dict[str, Currency] | None = field(default=None, repr=False)

    @property
    def currencies(self) -> dict[str, Currency]:
        if self.genesis is None:
            return {}
        if self._currencies is None:
            self._currencies = {c.code: c for c in self.genesis.currencies}
        return self._currencies

    def balances(self) -> dict[tuple[str, str], int]:
        return {k: p.balance for k, p in self.positions.items()}

    def open_account(self, address: str, role: str) -> None:
        self.accounts[address] = rules.AccountState(address, role, Status.ACTIVE.value)
        for c in self.genesis.currencies:
            limit, ceiling = self.genesis.default_for(c.code, role)
            self.positions[(address, c.code)] = rules.Position(0, limit, ceiling)

    def apply(self, entry, *, verify_signatures: bool = True) -> None:
        """Apply one stored entry in strict order, or raise IntegrityViolation naming the finding."""
        if entry.seq != self.seq + 1:
            raise E.IntegrityViolation(f"entry seq {entry.seq} follows {self.seq}")
        result = apply(self, entry, signatures=check_signature if verify_signatures else None)
        if isinstance(result, Finding):
            raise E.IntegrityViolation(str(result))

    def apply_action(self, seq: int, at_ms: int, action: Action, signer: str, digest: bytes) -> None:
        """Posting's entry point (the hot path): the signature is verified and the nonce fresh
        (the caller checked both); run the rule of the action's kind and apply it, or raise
        LedgerError and change nothing."""
        rules.check_not_expired(action.valid_until, at_ms)
        REGISTRY[KIND_OF[type(action)]].rule(self, at_ms, action, signer)
        self.used_nonces[(signer, action.nonce)] = digest
        if seq in self.paid:
            self.paid_digests[seq] = digest
        self.seq = seq

    def apply_federation(self, seq: int, at_ms: int, record: FederationRecord, *, check_signatures: bool = True) -> None:
        """Posting's entry point for a federation entry: its rule re-checks every signature it
        carries, then applies it; or LedgerError and nothing changes (the rules check before
        they change anything)."""
        if self.genesis is None:
            raise E.IntegrityViolation("the log does not start with community.created")
        REGISTRY[record.KIND.value].rule(self, at_ms, record, check_signatures)
        self.seq = seq


# -- one rule per kind: check against the state, then change it (or raise, changing nothing) --
def _community_created(st: LedgerState, at_ms: int, genesis: Genesis, signer: str | None) -> None:
    if st.genesis is not None:
        raise E.IntegrityViolation("a second community.created entry")
    st.genesis = genesis
    st.open_account(genesis.treasurer, Role.TREASURER.value)


def _transfer_posted(st: LedgerState, at_ms: int, t: Transfer, signer: str) -> None:
    key_p, key_q = (t.payer, t.currency), (t.payee, t.currency)
    positions = st.positions
    refund = t.__class__ is RefundTransfer
    if refund:  # the refund rule (ledger.core.refunds), checked before anything changes, and before
        # the transfer rule, so a refund in the wrong currency is told refund_mismatch, not a limit
        original = st.paid.get(t.refund_of)
        total = check_refund(t, original, st.paid_digests.get(t.refund_of), st.refunded.get(t.refund_of, 0),
                             (t.refund_of, t.refund_nonce) in st.refund_keys)
    new_p, new_q = rules.check_transfer(
        t, now_ms=at_ms, currencies=st.currencies,
        payer=st.accounts.get(t.payer), payee=st.accounts.get(t.payee),
        payer_pos=positions.get(key_p), payee_pos=positions.get(key_q))
    # holds stay as they are; the constructor, not dataclasses.replace (~5x its cost, and this
    # runs twice for every transfer a fold meets)
    p, q = positions[key_p], positions[key_q]
    positions[key_p] = rules.Position(new_p, p.credit_limit, p.ceiling, p.held_out, p.held_in)
    positions[key_q] = rules.Position(new_q, q.credit_limit, q.ceiling, q.held_out, q.held_in)
    if refund:
        st.refunded[t.refund_of] = total
        st.refund_keys.add((t.refund_of, t.refund_nonce))
    st.paid[st.seq + 1] = Paid(t.payer, t.payee, t.currency, t.amount, t.nonce, refund)


def _not_peer(account: rules.AccountState | None) -> None:
    if account is not None and account.role == Role.PEER:
        # a peer account's limits and life come from its alliance (alliance.recorded / .status)
        raise E.NotAuthorised(f"{account.address} is a peer account: its alliance governs it")


def _account_opened(st: LedgerState, at_ms: int, a: OpenAccount, signer: str) -> None:
    rules.check_admin(st.accounts.get(signer))
    if a.role == Role.PEER:
        raise E.NotAuthorised("a peer account is opened only by recording an alliance")
    rules.check_open_account(a, st.accounts.get(a.account))
    st.open_account(a.account, a.role)


def _limit_set(st: LedgerState, at_ms: int, a: SetLimit, signer: str) -> None:
    rules.check_admin(st.accounts.get(signer))
    rules.check_set_limit(a, st.accounts.get(a.account), st.currencies, signer)
    _not_peer(st.accounts.get(a.account))
    key = (a.account, a.currency)
    st.positions[key] = replace(st.positions[key], credit_limit=a.credit_limit, ceiling=a.ceiling)


def _account_status(st: LedgerState, at_ms: int, a: SetStatus, signer: str) -> None:
    rules.check_admin(st.accounts.get(signer))
    _not_peer(st.accounts.get(a.account))
    mine = {c: p for (acct, c), p in st.positions.items() if acct == a.account}
    rules.check_set_status(a, st.accounts.get(a.account), signer, {c: p.balance for c, p in mine.items()},
                           {c: p.held_out + p.held_in for c, p in mine.items()})
    old = st.accounts[a.account]
    st.accounts[a.account] = rules.AccountState(old.address, old.role, a.status)


@dataclass(frozen=True, slots=True)
class KindSpec:
    record: type  # the typed entry record (from_body / body)
    rule: Callable  # rule(state, at_ms, payload, signer): check, then apply; raise LedgerError to refuse


# The one place that dispatches on an entry's kind. Keyed by the plain strings (a Kind looks
# them up too): the same objects KIND_OF hands to posting, so its lookup is an identity hit.
REGISTRY: dict[str, KindSpec] = {spec.record.KIND.value: spec for spec in (
    KindSpec(Genesis, _community_created),
    KindSpec(AccountOpened, _account_opened),
    KindSpec(LimitSet, _limit_set),
    KindSpec(StatusSet, _account_status),
    KindSpec(TransferPosted, _transfer_posted),
    # federation: rule(state, at_ms, record, check_signatures) (ledger.core.federation_rules)
    KindSpec(AllianceRecorded, F.alliance_recorded),
    KindSpec(AllianceStatusSet, F.alliance_status),
    KindSpec(RemotePrepared, F.remote_prepared),
    KindSpec(RemoteCommitted, F.remote_committed),
    KindSpec(RemoteAborted, F.remote_aborted),
)}
# which kind each signed action makes (plain strings: they go straight into rows and JSON)
KIND_OF: dict[type, str] = {spec.record.ACTION: kind for kind, spec in REGISTRY.items()
                            if issubclass(spec.record, Signed)}
KIND_OF[RefundTransfer] = TransferPosted.KIND.value  # a refund is a transfer.posted with its link


apply_action = LedgerState.apply_action


# each signed action's body writer (posting's hot path: one lookup, no record built)
_BODY_OF: dict[type, Callable] = {spec.record.ACTION: spec.record.body_of for spec in REGISTRY.values()
                                  if issubclass(spec.record, Signed)}
_BODY_OF[RefundTransfer] = TransferPosted.body_of


def action_body(action: Action, signer: str, signature: str, digest: bytes) -> dict:
    """The entry body of a signed action (the body posting writes)."""
    body_of = _BODY_OF.get(type(action))
    if body_of is None:
        raise E.InvalidInput(f"not an action: {action!r}")
    return body_of(action, signer, signature, digest)


def decode(kind: str, body: dict) -> Record:
    """The typed record of a stored body; InvalidInput for an unknown kind or a malformed body."""
    spec = REGISTRY.get(kind)
    if spec is None:
        raise E.InvalidInput(f"unknown entry kind {kind!r}")
    try:
        return spec.record.from_body(body)
    except (KeyError, TypeError, AttributeError) as exc:
        raise E.InvalidInput(f"{kind} body is malformed: {exc}") from None


# -- signatures: checked inline, or handed to a parallel checker by the caller --------------
SignatureCheck = Callable[[int, bytes, str, str], "Finding | None"]


def signature_finding(seq: int, signer: str) -> Finding:
    return Finding("signature", seq, f"signed by {signer}", "a signature that does not recover to it",
                   account=signer)


def check_signature(seq: int, digest: bytes, signature: str, signer: str) -> Finding | None:
    try:
        if recover_signer(digest, signature) == signer:
            return None
    except E.LedgerError:
        pass
    return signature_finding(seq, signer)


def _where(body: dict) -> dict:
    """Which account (and currency) a finding about this body concerns."""
    if not isinstance(body, dict):
        return {}
    if isinstance(body.get("payer"), str):
        return {"account": body["payer"], "currency": body.get("currency")}
    if isinstance(body.get("account"), str):
        return {"account": body["account"]}
    return {}


def step(st: LedgerState, seq: int, kind: str, at: int, body: dict,
         signatures: SignatureCheck | None = check_signature) -> Record | Finding:
    """Fold one stored entry into `st`: its record when the entry is one the rules accept,
    else the Finding that says why not (and `st` is unchanged)."""
    try:
        if not isinstance(body, dict):
            raise TypeError(f"an entry body is an object, not {type(body).__name__}")
        record = decode(kind, body)
        if record.body() != body:
            return Finding("rules", seq, "the canonical body of its record", "another body",
                           detail="not the canonical encoding of the entry", **_where(body))
        if isinstance(record, FederationRecord):
            st.apply_federation(seq, at, record, check_signatures=signatures is not None)
            return record
        if not isinstance(record, Signed):  # the genesis: no signature, no nonce
            REGISTRY[kind].rule(st, at, record, None)
            st.seq = seq
            return record
        if st.genesis is None:
            raise E.IntegrityViolation("the log does not start with community.created")
        action, signer = record.action, record.signer
        digest = st.genesis.domain.digest(action.struct_hash())
        if digest != record.digest:
            return Finding("rules", seq, hex0x(digest), body.get("digest"),
                           detail="stored digest differs from the digest of the stored fields")
        if signatures is not None:
            bad = signatures(seq, digest, record.signature, signer)
            if bad is not None:
                return bad
        if (signer, action.nonce) in st.used_nonces:
            return Finding("rules", seq, "a fresh (signer, nonce)", f"nonce {action.nonce} of {signer} reused",
                           account=signer)
        apply_action(st, seq, at, action, signer, digest)
        return record
    except E.LedgerError as exc:
        return Finding("rules", seq, "an entry the posting rules accept", f"{exc.code}: {exc.message}",
                       **_where(body))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Finding("rules", seq, "a well-formed entry body", f"{type(exc).__name__}: {exc}")


def apply(st: LedgerState, entry, *, signatures: SignatureCheck | None = check_signature) -> LedgerState | Finding:
    """Fold one Entry (anything with seq, kind, at, body) into `st`: the state, or a Finding."""
    result = step(st, entry.seq, entry.kind, entry.at, entry.body, signatures)
    return result if isinstance(result, Finding) else st


def replay(entries: Iterable, *, verify_signatures: bool = True) -> LedgerState:
    """The state a log implies, from seq 1; IntegrityViolation at the first entry the rules refuse."""
    state = LedgerState()
    for e in entries:
        state.apply(e, verify_signatures=verify_signatures)
    return state


def zero_sum_faults(balances: dict[tuple[str, str], int]) -> dict[str, int]:
    """Invariant 1: per currency the balances sum to 0. Returns {currency: sum} for each violation."""
    totals: dict[str, int] = {}
    for (_, currency), amount in balances.items():
        totals[currency] = totals.get(currency, 0) + amount
    return {c: s for c, s in totals.items() if s != 0}
