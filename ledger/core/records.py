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
from .federation import Alliance, AllianceStatus, NodeMessage, RemoteTransfer, peer_address
from .refunds import RefundTransfer
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
        if "refundOf" in body:  # a refund: the link beside the signed fields (ledger.core.refunds)
            link = body["refundOf"]
            nonce = link["refundNonce"]
            if not isinstance(nonce, str) or not nonce.isascii() or not nonce.isdigit():
                raise TypeError("refundOf.refundNonce must be decimal text")
            a = RefundTransfer.of(a, link["seq"], int(nonce))
        return a, a.payer

    @staticmethod
    def body_of(a: Transfer, signer: str, signature: str, digest: bytes) -> dict:
        body = {"payer": a.payer, "payee": a.payee, "currency": a.currency, "amount": a.amount,
                "memoHash": hex0x(a.memo_hash), "requestId": hex0x(a.request_id),
                "nonce": str(a.nonce), "validUntil": str(a.valid_until), "signature": signature, "digest": hex0x(digest)}
        if a.__class__ is not Transfer:  # a RefundTransfer (the hot path's plain transfer skips the lookup)
            body["refundOf"] = a.link()
        return body

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


# --- federation (docs/federation.md): not `Signed` records (the fold runs their rule itself):
# each carries what other parties signed (the other treasurer, the payer, the other node), and
# its rule re-checks every one of those signatures, so each log alone replays and verifies.

def _node_message_body(m: NodeMessage | None) -> dict | None:
    return None if m is None else m.message()


def _node_message_from(body: object) -> NodeMessage | None:
    return None if body is None else NodeMessage.from_message(body)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be text")
    return value


def _opt_text(value: object, what: str) -> str | None:
    return None if value is None else _text(value, what)


def alliance_terms_body(a: Alliance) -> dict:
    """The terms as an entry stores them: uint256 fields as decimal strings (JSON safe)."""
    m = a.message()
    return {**m, "chainIdA": str(a.chain_id_a), "chainIdB": str(a.chain_id_b), "nonce": str(a.nonce),
            "validUntil": str(a.valid_until)}


def remote_transfer_body(t: RemoteTransfer) -> dict:
    return {**t.message(), "nonce": str(t.nonce), "validUntil": str(t.valid_until)}


@dataclass(frozen=True, slots=True)
class FederationRecord:
    """Base of the federation records. `nonce_row`: the (signer, nonce, digest) the entry uses
    up in this community's nonce space (signed_actions), or None."""

    @property
    def opens(self) -> str | None:
        return None

    @property
    def nonce_row(self) -> tuple[str, int, bytes] | None:
        return None


@dataclass(frozen=True, slots=True)
class AllianceRecorded(FederationRecord):
    """Both treasurers' signatures on the same terms; `side` is this community's side; `by` is
    this side's treasurer (recovered when recorded, re-checked on replay). The side that records
    second carries the other node's signed `alliance-recorded` message."""

    alliance: Alliance
    side: str
    signature_a: str
    signature_b: str
    by: str
    node_message: NodeMessage | None = None
    node_signature: str | None = None

    KIND: ClassVar[Kind] = Kind.ALLIANCE_RECORDED

    def body(self) -> dict:
        other = self.alliance.community("B" if self.side == "A" else "A")
        return {"allianceId": hex0x(self.alliance.alliance_id), "terms": alliance_terms_body(self.alliance),
                "side": self.side, "signatureA": self.signature_a, "signatureB": self.signature_b, "by": self.by,
                "peerAccount": peer_address(other), "nodeMessage": _node_message_body(self.node_message),
                "nodeSignature": self.node_signature}

    @classmethod
    def from_body(cls, body: dict) -> "AllianceRecorded":
        side = body["side"]
        if side not in ("A", "B"):
            raise TypeError("side must be A or B")
        return cls(Alliance.from_message(body["terms"]), side, _text(body["signatureA"], "signatureA"),
                   _text(body["signatureB"], "signatureB"), _text(body["by"], "by"),
                   _node_message_from(body["nodeMessage"]), _opt_text(body["nodeSignature"], "nodeSignature"))

    @property
    def opens(self) -> str | None:
        return peer_address(self.alliance.community("B" if self.side == "A" else "A"))


@dataclass(frozen=True, slots=True)
class AllianceStatusSet(FederationRecord):
    """A treasurer of this community signed a new status for an alliance (its own nonce)."""

    action: AllianceStatus
    by: str
    signature: str
    digest: bytes

    KIND: ClassVar[Kind] = Kind.ALLIANCE_STATUS

    def body(self) -> dict:
        a = self.action
        return {"allianceId": hex0x(a.alliance_id), "status": a.status, "by": self.by, "nonce": str(a.nonce),
                "validUntil": str(a.valid_until), "signature": self.signature, "digest": hex0x(self.digest)}

    @classmethod
    def from_body(cls, body: dict) -> "AllianceStatusSet":
        a = AllianceStatus.create(alliance_id=body["allianceId"], status=body["status"], nonce=body["nonce"],
                                  valid_until=body["validUntil"])
        return cls(a, _text(body["by"], "by"), _text(body["signature"], "signature"),
                   parse_b32(body["digest"], "digest"))

    @property
    def nonce_row(self):
        return self.by, self.action.nonce, self.digest


SIDES = ("out", "in")


@dataclass(frozen=True, slots=True)
class RemotePrepared(FederationRecord):
    """A leg prepared: at the origin (`out`) the payer's hold, with the presumed-abort deadline;
    at the destination (`in`) the peer account's and payee's holds, carrying the origin node's
    signed PREPARE. Both carry the payer's signed RemoteTransfer."""

    side: str
    alliance_id: bytes
    payment_id: bytes
    transfer: RemoteTransfer
    payer_signature: str
    deadline: int = 0
    message: NodeMessage | None = None
    node_signature: str | None = None

    KIND: ClassVar[Kind] = Kind.REMOTE_PREPARED

    def body(self) -> dict:
        return {"side": self.side, "allianceId": hex0x(self.alliance_id), "paymentId": hex0x(self.payment_id),
                "transfer": remote_transfer_body(self.transfer), "payerSignature": self.payer_signature,
                "deadline": self.deadline, "message": _node_message_body(self.message),
                "nodeSignature": self.node_signature}

    @classmethod
    def from_body(cls, body: dict) -> "RemotePrepared":
        if body["side"] not in SIDES or not isinstance(body["deadline"], int):
            raise TypeError("side must be out or in, deadline an integer")
        return cls(body["side"], parse_b32(body["allianceId"], "allianceId"), parse_b32(body["paymentId"], "paymentId"),
                   RemoteTransfer.from_message(body["transfer"]), _text(body["payerSignature"], "payerSignature"),
                   body["deadline"], _node_message_from(body["message"]), _opt_text(body["nodeSignature"], "nodeSignature"))

    @property
    def nonce_row(self):
        # the origin uses up the payer's nonce (shared with local transfers); the destination does
        # not: the nonce belongs to the other community's space
        return (self.transfer.payer, self.transfer.nonce, self.payment_id) if self.side == "out" else None


@dataclass(frozen=True, slots=True)
class RemoteDecided(FederationRecord):
    """A leg decided. Carries the message that justified it: at the origin the destination's
    vote (PREPARED for a commit, REFUSED for an abort; none for a timeout abort), at the
    destination the origin's COMMIT or ABORT."""

    side: str
    alliance_id: bytes
    payment_id: bytes
    code: str = ""
    message: NodeMessage | None = None
    node_signature: str | None = None

    def body(self) -> dict:
        return {"side": self.side, "allianceId": hex0x(self.alliance_id), "paymentId": hex0x(self.payment_id),
                "code": self.code, "message": _node_message_body(self.message), "nodeSignature": self.node_signature}

    @classmethod
    def from_body(cls, body: dict):
        if body["side"] not in SIDES:
            raise TypeError("side must be out or in")
        return cls(body["side"], parse_b32(body["allianceId"], "allianceId"), parse_b32(body["paymentId"], "paymentId"),
                   _text(body["code"], "code"), _node_message_from(body["message"]),
                   _opt_text(body["nodeSignature"], "nodeSignature"))


@dataclass(frozen=True, slots=True)
class RemoteCommitted(RemoteDecided):
    KIND: ClassVar[Kind] = Kind.REMOTE_COMMITTED


@dataclass(frozen=True, slots=True)
class RemoteAborted(RemoteDecided):
    KIND: ClassVar[Kind] = Kind.REMOTE_ABORTED


CommunityCreated = Genesis
Record = (Genesis | TransferPosted | AccountOpened | LimitSet | StatusSet | AllianceRecorded | AllianceStatusSet
          | RemotePrepared | RemoteCommitted | RemoteAborted)
