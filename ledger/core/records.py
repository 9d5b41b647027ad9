"""Typed entry records: one frozen dataclass per entry kind, each with `from_body` (read a
stored body, refusing a malformed one) and `body` (the one body the service writes).

An entry body is exactly `Record.from_body(body).body()`: anything else (extra keys, an
amount as text, a lost field) is not the canonical entry, and every verifier says so.
Signed records carry the EIP-712 action, who signed it, the signature and the digest as
stored; whether that digest and signature are right is the fold's job (ledger.core.fold)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from . import errors as E
from .amounts import Currency
from .codec import hex0x, parse_b32
from .hashing import ZERO32
from .typed_data import Action, Domain, OpenAccount, SetLimit, SetStatus, Transfer
from .vocab import Kind


@dataclass(frozen=True, slots=True)
class RoleDefault:
    currency: str
    role: str
    credit_limit: int
    ceiling: int | None


@dataclass(frozen=True, slots=True)
class Genesis:
    """The community.created record: what `ayni init` decides once (the community, its
    signing domain, currencies, per-role defaults and the first treasurer)."""

    community: str
    domain: Domain
    currencies: tuple[Currency, ...]
    defaults: tuple[RoleDefault, ...]
    treasurer: str

    KIND: ClassVar[Kind] = Kind.COMMUNITY_CREATED

    def body(self) -> dict:
        return {
            "community": self.community,
            "domain": {"name": self.domain.name, "version": self.domain.version,
                       "chainId": str(self.domain.chain_id), "salt": hex0x(self.domain.salt)},
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
            domain=Domain(chain_id=int(d["chainId"]), salt=parse_b32(d["salt"], "domain salt"),
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

    # what the entry implies for the projections (ayni verify compares them)
    @property
    def opens(self) -> str | None:
        return self.treasurer


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed action as an entry holds it. Subclasses name the action's fields in the body;
    every body ends with nonce and validUntil (decimal strings: they may exceed 2**53), the
    signature and the digest."""

    action: Action
    signer: str
    signature: str
    digest: bytes  # as stored; the fold checks it against the digest of the stored fields

    KIND: ClassVar[Kind]
    ACTION: ClassVar[type]

    @classmethod
    def from_body(cls, body: dict) -> "Signed":
        try:
            action, signer = cls._action_from(body, {"nonce": body["nonce"], "valid_until": body["validUntil"]})
            signature = body["signature"]
            if not isinstance(signature, str):
                raise TypeError("signature must be text")
            return cls(action, signer, signature, parse_b32(body["digest"], "digest"))
        except (KeyError, TypeError) as exc:
            raise E.InvalidInput(f"{cls.KIND} body is malformed: {exc}") from None

    def body(self) -> dict:
        return self.body_of(self.action, self.signer, self.signature, self.digest)

    @property
    def opens(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class TransferPosted(Signed):
    KIND: ClassVar[Kind] = Kind.TRANSFER_POSTED
    ACTION: ClassVar[type] = Transfer

    @staticmethod
    def _action_from(body: dict, common: dict):
        a = Transfer.create(payer=body["payer"], payee=body["payee"], currency=body["currency"],
                            amount=body["amount"], memo_hash=body["memoHash"], request_id=body["requestId"],
                            **common)
        return a, a.payer

    @staticmethod
    def body_of(a: Transfer, signer: str, signature: str, digest: bytes) -> dict:
        return {"payer": a.payer, "payee": a.payee, "currency": a.currency, "amount": a.amount,
                "memoHash": hex0x(a.memo_hash), "requestId": hex0x(a.request_id),
                "nonce": str(a.nonce), "validUntil": str(a.valid_until), "signature": signature, "digest": hex0x(digest)}

    @property
    def request_id(self) -> bytes | None:
        return None if self.action.request_id == ZERO32 else self.action.request_id


@dataclass(frozen=True, slots=True)
class AccountOpened(Signed):
    KIND: ClassVar[Kind] = Kind.ACCOUNT_OPENED
    ACTION: ClassVar[type] = OpenAccount

    @staticmethod
    def _action_from(body: dict, common: dict):
        return OpenAccount.create(account=body["account"], role=body["role"], **common), body["by"]

    @staticmethod
    def body_of(a: OpenAccount, signer: str, signature: str, digest: bytes) -> dict:
        return {"account": a.account, "role": a.role, "by": signer, "nonce": str(a.nonce),
                "validUntil": str(a.valid_until), "signature": signature, "digest": hex0x(digest)}

    @property
    def opens(self) -> str | None:
        return self.action.account


@dataclass(frozen=True, slots=True)
class LimitSet(Signed):
    KIND: ClassVar[Kind] = Kind.LIMIT_SET
    ACTION: ClassVar[type] = SetLimit

    @staticmethod
    def _action_from(body: dict, common: dict):
        a = SetLimit.create(account=body["account"], currency=body["currency"],
                            credit_limit=body["creditLimit"], ceiling=body["ceiling"], **common)
        return a, body["by"]

    @staticmethod
    def body_of(a: SetLimit, signer: str, signature: str, digest: bytes) -> dict:
        return {"account": a.account, "currency": a.currency, "creditLimit": a.credit_limit,
                "ceiling": a.ceiling, "by": signer, "nonce": str(a.nonce), "validUntil": str(a.valid_until),
                "signature": signature, "digest": hex0x(digest)}


@dataclass(frozen=True, slots=True)
class StatusSet(Signed):
    KIND: ClassVar[Kind] = Kind.ACCOUNT_STATUS
    ACTION: ClassVar[type] = SetStatus

    @staticmethod
    def _action_from(body: dict, common: dict):
        return SetStatus.create(account=body["account"], status=body["status"], **common), body["by"]

    @staticmethod
    def body_of(a: SetStatus, signer: str, signature: str, digest: bytes) -> dict:
        return {"account": a.account, "status": a.status, "by": signer, "nonce": str(a.nonce),
                "validUntil": str(a.valid_until), "signature": signature, "digest": hex0x(digest)}


CommunityCreated = Genesis
Record = Genesis | TransferPosted | AccountOpened | LimitSet | StatusSet
