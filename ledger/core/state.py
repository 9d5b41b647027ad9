"""The ledger as a pure state machine over entries: replay, entry bodies, invariants.

`LedgerState.apply` re-checks every signature and every posting rule, so replaying
the log from seq 1 proves the stored balances were earned by valid, signed entries
(invariants 2 and 3 of docs/ledger-model.md). The service writes entry bodies with
the builders below, and replay reads them back: one definition of each entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import errors as E
from . import rules
from .amounts import Currency
from .entries import Entry
from .typed_data import Action, Domain, OpenAccount, SetLimit, SetStatus, Transfer, recover_signer


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass(frozen=True, slots=True)
class RoleDefault:
    currency: str
    role: str
    credit_limit: int
    ceiling: int | None


@dataclass(frozen=True, slots=True)
class Genesis:
    """What `ayni init` decides once: the community, its domain, currencies and first treasurer."""

    community: str
    domain: Domain
    currencies: tuple[Currency, ...]
    defaults: tuple[RoleDefault, ...]
    treasurer: str

    def body(self) -> dict:
        return {
            "community": self.community,
            "domain": {"name": self.domain.name, "version": self.domain.version,
                       "chainId": str(self.domain.chain_id), "salt": _hex(self.domain.salt)},
            "currencies": [c.as_dict() for c in self.currencies],
            "defaults": [{"currency": d.currency, "role": d.role, "creditLimit": d.credit_limit,
                          "ceiling": d.ceiling} for d in self.defaults],
            "treasurer": self.treasurer,
        }

    @classmethod
    def from_body(cls, body: dict) -> "Genesis":
        d = body["domain"]
        return cls(
            community=body["community"],
            domain=Domain(chain_id=int(d["chainId"]), salt=bytes.fromhex(d["salt"][2:]),
                          name=d["name"], version=d["version"]),
            currencies=tuple(Currency(c["code"], c["name"], c["style"], c["decimals"])
                             for c in body["currencies"]),
            defaults=tuple(RoleDefault(x["currency"], x["role"], x["creditLimit"], x["ceiling"])
                           for x in body["defaults"]),
            treasurer=body["treasurer"],
        )

    def default_for(self, currency: str, role: str) -> tuple[int, int | None]:
        for d in self.defaults:
            if d.currency == currency and d.role == role:
                return d.credit_limit, d.ceiling
        return 0, None  # no default: the account cannot go below zero until a limit is set


def action_body(action: Action, signer: str, signature: str, digest: bytes) -> dict:
    """The entry body of a signed action: the signed fields, the signature, its digest.
    Integers that may exceed 2**53 (nonce, validUntil) are decimal strings."""
    common = {"nonce": str(action.nonce), "validUntil": str(action.valid_until),
              "signature": signature, "digest": _hex(digest)}
    if isinstance(action, Transfer):
        return {"payer": action.payer, "payee": action.payee, "currency": action.currency,
                "amount": action.amount, "memoHash": _hex(action.memo_hash),
                "requestId": _hex(action.request_id), **common}
    if isinstance(action, OpenAccount):
        return {"account": action.account, "role": action.role, "by": signer, **common}
    if isinstance(action, SetLimit):
        return {"account": action.account, "currency": action.currency,
                "creditLimit": action.credit_limit, "ceiling": action.ceiling, "by": signer, **common}
    if isinstance(action, SetStatus):
        return {"account": action.account, "status": action.status, "by": signer, **common}
    raise E.InvalidInput(f"not an action: {action!r}")


KIND_OF = {Transfer: "transfer.posted", OpenAccount: "account.opened",
           SetLimit: "limit.set", SetStatus: "account.status"}


def action_from_body(kind: str, body: dict) -> tuple[Action, str, str]:
    """(action, claimed signer, signature) from a stored body; malformed bodies raise InvalidInput."""
    try:
        common = {"nonce": body["nonce"], "valid_until": body["validUntil"]}
        if kind == "transfer.posted":
            a = Transfer.create(payer=body["payer"], payee=body["payee"], currency=body["currency"],
                                amount=body["amount"], memo_hash=body["memoHash"],
                                request_id=body["requestId"], **common)
            return a, a.payer, body["signature"]
        if kind == "account.opened":
            a = OpenAccount.create(account=body["account"], role=body["role"], **common)
        elif kind == "limit.set":
            a = SetLimit.create(account=body["account"], currency=body["currency"],
                                credit_limit=body["creditLimit"], ceiling=body["ceiling"], **common)
        elif kind == "account.status":
            a = SetStatus.create(account=body["account"], status=body["status"], **common)
        else:
            raise E.InvalidInput(f"entry kind {kind!r} carries no signed action")
        return a, body["by"], body["signature"]
    except (KeyError, TypeError) as exc:
        raise E.InvalidInput(f"{kind} body is malformed: {exc}") from None


@dataclass
class LedgerState:
    """Everything the log implies, rebuilt in memory. Mutable on purpose: it is the
    accumulator of a fold over entries, never shared."""

    genesis: Genesis | None = None
    accounts: dict[str, rules.AccountState] = field(default_factory=dict)
    positions: dict[tuple[str, str], rules.Position] = field(default_factory=dict)
    used_nonces: dict[tuple[str, int], bytes] = field(default_factory=dict)
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

    def _open(self, address: str, role: str) -> None:
        self.accounts[address] = rules.AccountState(address, role, "active")
        for c in self.genesis.currencies:
            limit, ceiling = self.genesis.default_for(c.code, role)
            self.positions[(address, c.code)] = rules.Position(0, limit, ceiling)

    def apply(self, entry: Entry, *, verify_signatures: bool = True) -> None:
        """Apply one stored entry, re-checking it exactly as the service did; raise
        LedgerError if the log contains something the rules would have refused."""
        if entry.seq != self.seq + 1:
            raise E.IntegrityViolation(f"entry seq {entry.seq} follows {self.seq}")
        if entry.kind == "community.created":
            if self.genesis is not None:
                raise E.IntegrityViolation("a second community.created entry")
            self.genesis = Genesis.from_body(entry.body)
            self._open(self.genesis.treasurer, "treasurer")
            self.seq = entry.seq
            return
        if self.genesis is None:
            raise E.IntegrityViolation("the log does not start with community.created")
        action, signer, signature = action_from_body(entry.kind, entry.body)
        digest = self.genesis.domain.digest(action.struct_hash())
        if entry.body.get("digest") != _hex(digest):
            raise E.IntegrityViolation("stored digest differs from the digest of the stored fields")
        if verify_signatures and recover_signer(digest, signature) != signer:
            raise E.WrongSigner(f"signature does not recover to {signer}")
        if rules.check_nonce(self.used_nonces.get((signer, action.nonce)), digest):
            raise E.IntegrityViolation("the same signed message appears twice in the log")
        self.apply_action(entry.seq, entry.at, action, signer, digest)

    def apply_action(self, seq: int, at_ms: int, action: Action, signer: str, digest: bytes) -> None:
        """Check every rule for an authenticated action and apply it, or raise and change nothing.
        The caller has verified the signature and that the nonce is fresh."""
        rules.check_not_expired(action.valid_until, at_ms)
        if isinstance(action, Transfer):
            key_p, key_q = (action.payer, action.currency), (action.payee, action.currency)
            new_p, new_q = rules.check_transfer(
                action, now_ms=at_ms, currencies=self.currencies,
                payer=self.accounts.get(action.payer), payee=self.accounts.get(action.payee),
                payer_pos=self.positions.get(key_p), payee_pos=self.positions.get(key_q))
            p, q = self.positions[key_p], self.positions[key_q]
            self.positions[key_p] = rules.Position(new_p, p.credit_limit, p.ceiling)
            self.positions[key_q] = rules.Position(new_q, q.credit_limit, q.ceiling)
        else:
            rules.check_admin(self.accounts.get(signer))
            if isinstance(action, OpenAccount):
                rules.check_open_account(action, self.accounts.get(action.account))
                self._open(action.account, action.role)
            elif isinstance(action, SetLimit):
                rules.check_set_limit(action, self.accounts.get(action.account), self.currencies, signer)
                old = self.positions[(action.account, action.currency)]
                self.positions[(action.account, action.currency)] = rules.Position(
                    old.balance, action.credit_limit, action.ceiling)
            else:
                balances = {c: p.balance for (a, c), p in self.positions.items() if a == action.account}
                rules.check_set_status(action, self.accounts.get(action.account), signer, balances)
                old = self.accounts[action.account]
                self.accounts[action.account] = rules.AccountState(old.address, old.role, action.status)
        self.used_nonces[(signer, action.nonce)] = digest
        self.seq = seq


def zero_sum_faults(balances: dict[tuple[str, str], int]) -> dict[str, int]:
    """Invariant 1: per currency the balances sum to 0. Returns {currency: sum} for each violation."""
    totals: dict[str, int] = {}
    for (_, currency), amount in balances.items():
        totals[currency] = totals.get(currency, 0) + amount
    return {c: s for c, s in totals.items() if s != 0}


def replay(entries, *, verify_signatures: bool = True) -> LedgerState:
    state = LedgerState()
    for e in entries:
        state.apply(e, verify_signatures=verify_signatures)
    return state
