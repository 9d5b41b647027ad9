"""Federation, the pure part: what allied nodes and their members sign, and the hold rules.

Typed data (EIP-712, hashing written out by hand like ledger.core.typed_data and tested
byte-equal to eth-account and ethers): `Alliance` with its `CurrencyPair[]`, `AllianceStatus`,
`RemoteTransfer` (what a payer signs) and `NodeMessage` (what a node signs to another).
Rules: the rate, and holds (amounts reserved by undecided remote payments) that count
against what an account may spend. No I/O: the service and replay call these.
Why each rule exists: docs/federation.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from . import errors as E
from .addresses import normalize_address, to_checksum
from .amounts import CURRENCY_CODE, MAX_BALANCE, check_amount
from .hashing import ZERO32, keccak256
from .rules import AccountState, check_not_expired
from .typed_data import (EIP712_TYPES as _LEDGER_TYPES, UINT64_MAX, UINT256_MAX, Domain, _addr, _b32, _int_amount,
                         _str, _u256, _uint, recover_signer, sign_digest)

CURRENCY_PAIR_TYPE = ("CurrencyPair(string currencyA,string currencyB,uint256 unitsA,uint256 unitsB,"
                      "uint256 limitA,uint256 limitB)")
# EIP-712 encodeType: the primary type, then every referenced struct type sorted by name.
ALLIANCE_TYPE = ("Alliance(bytes32 communityA,uint256 chainIdA,address nodeA,string urlA,"
                 "bytes32 communityB,uint256 chainIdB,address nodeB,string urlB,"
                 "CurrencyPair[] pairs,uint256 nonce,uint64 validUntil)" + CURRENCY_PAIR_TYPE)
ALLIANCE_STATUS_TYPE = "AllianceStatus(bytes32 allianceId,string status,uint256 nonce,uint64 validUntil)"
REMOTE_TRANSFER_TYPE = ("RemoteTransfer(address payer,bytes32 payeeCommunity,address payee,string currency,"
                        "uint256 amount,string payeeCurrency,uint256 delivered,uint256 nonce,uint64 validUntil,"
                        "bytes32 memoHash)")
NODE_MESSAGE_TYPE = "NodeMessage(bytes32 allianceId,bytes32 paymentId,string kind,string code,uint64 at)"

_TYPEHASH = {t.split("(")[0]: keccak256(t.encode()) for t in
             (CURRENCY_PAIR_TYPE, ALLIANCE_TYPE, ALLIANCE_STATUS_TYPE, REMOTE_TRANSFER_TYPE, NODE_MESSAGE_TYPE)}


def _fields(type_string: str) -> list[dict]:
    first = type_string[:type_string.index(")")]
    return [{"name": f.split(" ")[1], "type": f.split(" ")[0]} for f in first.split("(")[1].split(",")]


EIP712_TYPES = {"EIP712Domain": _LEDGER_TYPES["EIP712Domain"]}
for _t in (CURRENCY_PAIR_TYPE, ALLIANCE_TYPE, ALLIANCE_STATUS_TYPE, REMOTE_TRANSFER_TYPE, NODE_MESSAGE_TYPE):
    EIP712_TYPES[_t.split("(")[0]] = _fields(_t)
_REFERENCED = {"Alliance": ("CurrencyPair",)}

ALLIANCE_STATUSES = ("active", "suspended", "ended")
DIRECTIONS = ("AB", "BA")  # "AB": a member of A pays a member of B
# Node message kinds (docs/federation.md, "Node messages").
# "propose" signs an alliance proposal (paymentId = allianceId): the proposing NODE vouches for
# the terms its treasurer signed, so no one but that node can store a proposal naming it.
MESSAGE_KINDS = ("prepare", "prepared", "refused", "commit", "abort", "ack", "alliance-recorded", "propose")
MAX_PAIRS = 16
_URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~\-/]*)?", re.ASCII)
_CODE = re.compile(r"[a-z0-9_\-]{0,64}", re.ASCII)


def _currency(value: object, what: str) -> str:
    if not isinstance(value, str) or not CURRENCY_CODE.fullmatch(value):
        raise E.InvalidInput(f"{what} {value!r} is not a currency code")
    return value


def _units(value: object, what: str) -> int:
    return check_amount(_int_amount(value), what=what)


def _limit(value: object, what: str) -> int:
    return check_amount(_int_amount(value), what=what, allow_zero=True)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass(frozen=True, slots=True)
class CurrencyPair:
    """`units_a` minor units of `currency_a` (A's side) are worth `units_b` of `currency_b`;
    `limit_a`: how far A's peer account for B may go below zero (what A risks on B)."""

    currency_a: str
    currency_b: str
    units_a: int
    units_b: int
    limit_a: int
    limit_b: int

    PRIMARY = "CurrencyPair"

    @classmethod
    def create(cls, *, currency_a, currency_b, units_a, units_b, limit_a, limit_b) -> "CurrencyPair":
        return cls(_currency(currency_a, "currencyA"), _currency(currency_b, "currencyB"),
                   _units(units_a, "unitsA"), _units(units_b, "unitsB"),
                   _limit(limit_a, "limitA"), _limit(limit_b, "limitB"))

    @classmethod
    def from_message(cls, m: object) -> "CurrencyPair":
        if not isinstance(m, dict):
            raise E.InvalidInput("a currency pair must be an object")
        try:
            return cls.create(currency_a=m["currencyA"], currency_b=m["currencyB"], units_a=m["unitsA"],
                              units_b=m["unitsB"], limit_a=m["limitA"], limit_b=m["limitB"])
        except KeyError as exc:
            raise E.InvalidInput(f"currency pair lacks {exc}") from None

    def struct_hash(self) -> bytes:
        return keccak256(_TYPEHASH["CurrencyPair"] + _str(self.currency_a) + _str(self.currency_b)
                         + _u256(self.units_a) + _u256(self.units_b) + _u256(self.limit_a) + _u256(self.limit_b))

    def message(self) -> dict:
        return {"currencyA": self.currency_a, "currencyB": self.currency_b, "unitsA": self.units_a,
                "unitsB": self.units_b, "limitA": self.limit_a, "limitB": self.limit_b}

    def currencies(self, direction: str) -> tuple[str, str]:
        """(currency paid at the origin, currency delivered at the destination)."""
        return (self.currency_a, self.currency_b) if _direction(direction) == "AB" else (self.currency_b,
                                                                                         self.currency_a)


def _direction(direction: object) -> str:
    if direction not in DIRECTIONS:
        raise E.InvalidInput(f"direction {direction!r} must be one of {', '.join(DIRECTIONS)}")
    return direction  # type: ignore[return-value]


def _url(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > 200 or not _URL.fullmatch(value):
        raise E.InvalidInput(f"{what} must be an http(s) URL of at most 200 characters (no query, no spaces)")
    return value


@dataclass(frozen=True, slots=True)
class Alliance:
    """The terms both treasurers sign, each under their own community's domain."""

    community_a: bytes
    chain_id_a: int
    node_a: str
    url_a: str
    community_b: bytes
    chain_id_b: int
    node_b: str
    url_b: str
    pairs: tuple[CurrencyPair, ...]
    nonce: int
    valid_until: int

    PRIMARY = "Alliance"

    @classmethod
    def create(cls, *, community_a, chain_id_a, node_a, url_a, community_b, chain_id_b, node_b, url_b,
               pairs, nonce, valid_until) -> "Alliance":
        if not isinstance(pairs, (list, tuple)) or not 1 <= len(pairs) <= MAX_PAIRS:
            raise E.InvalidInput(f"an alliance names between 1 and {MAX_PAIRS} currency pairs")
        pairs = tuple(p if isinstance(p, CurrencyPair) else CurrencyPair.from_message(p) for p in pairs)
        for side in ("a", "b"):
            codes = [getattr(p, f"currency_{side}") for p in pairs]
            if len(set(codes)) != len(codes):
                # one currency here maps to one currency there, or the rate would be ambiguous
                raise E.InvalidInput(f"currency{side.upper()} repeats across pairs: {codes}")
        a = cls(_b32(community_a, "communityA"), _uint(chain_id_a, "chainIdA", UINT256_MAX),
                normalize_address(node_a, what="nodeA"), _url(url_a, "urlA"),
                _b32(community_b, "communityB"), _uint(chain_id_b, "chainIdB", UINT256_MAX),
                normalize_address(node_b, what="nodeB"), _url(url_b, "urlB"),
                pairs, _uint(nonce, "nonce", UINT256_MAX), _uint(valid_until, "validUntil", UINT64_MAX))
        if a.community_a == a.community_b:
            raise E.InvalidInput("an alliance links two different communities")
        if a.node_a == a.node_b:
            raise E.InvalidInput("each node has its own key: nodeA and nodeB must differ")
        return a

    @classmethod
    def from_message(cls, m: object) -> "Alliance":
        if not isinstance(m, dict):
            raise E.InvalidInput("alliance terms must be an object")
        try:
            return cls.create(community_a=m["communityA"], chain_id_a=m["chainIdA"], node_a=m["nodeA"],
                              url_a=m["urlA"], community_b=m["communityB"], chain_id_b=m["chainIdB"],
                              node_b=m["nodeB"], url_b=m["urlB"], pairs=m["pairs"], nonce=m["nonce"],
                              valid_until=m["validUntil"])
        except KeyError as exc:
            raise E.InvalidInput(f"alliance terms lack {exc}") from None

    def struct_hash(self) -> bytes:
        # EIP-712: an array of structs is keccak256 of the concatenated hashStructs
        pairs = keccak256(b"".join(p.struct_hash() for p in self.pairs))
        return keccak256(
            _TYPEHASH["Alliance"] + self.community_a + _u256(self.chain_id_a) + _addr(self.node_a) + _str(self.url_a)
            + self.community_b + _u256(self.chain_id_b) + _addr(self.node_b) + _str(self.url_b)
            + pairs + _u256(self.nonce) + _u256(self.valid_until))

    @property
    def alliance_id(self) -> bytes:
        # asked on every protocol step; the terms are immutable, so hash them once
        return _alliance_hash(self)

    def message(self) -> dict:
        return {"communityA": _hex(self.community_a), "chainIdA": self.chain_id_a, "nodeA": self.node_a,
                "urlA": self.url_a, "communityB": _hex(self.community_b), "chainIdB": self.chain_id_b,
                "nodeB": self.node_b, "urlB": self.url_b, "pairs": [p.message() for p in self.pairs],
                "nonce": self.nonce, "validUntil": self.valid_until}

    def side_of(self, community: bytes) -> str:
        if community == self.community_a:
            return "A"
        if community == self.community_b:
            return "B"
        raise E.UnknownAlliance(f"community {_hex(community)} is not a party to alliance {_hex(self.alliance_id)}")

    def domain(self, side: str) -> Domain:
        """The EIP-712 domain of one side: where its treasurer and node sign."""
        return (_domain(self.chain_id_a, self.community_a) if side == "A"
                else _domain(self.chain_id_b, self.community_b))

    def node(self, side: str) -> str:
        return self.node_a if side == "A" else self.node_b

    def community(self, side: str) -> bytes:
        return self.community_a if side == "A" else self.community_b

    def pair_for(self, currency: str, direction: str) -> CurrencyPair:
        """The pair whose origin-side currency is `currency`, or UnknownCurrency."""
        for p in self.pairs:
            if p.currencies(direction)[0] == currency:
                return p
        raise E.UnknownCurrency(f"currency {currency} does not cross this alliance in direction {direction}")


@lru_cache(maxsize=256)
def _alliance_hash(alliance: Alliance) -> bytes:
    return alliance.struct_hash()


@lru_cache(maxsize=256)
def _domain(chain_id: int, salt: bytes) -> Domain:
    # asked for every node message checked; a Domain is immutable and hashes its separator once
    return Domain(chain_id, salt)


def alliance_id(alliance: Alliance) -> bytes:
    """hashStruct(Alliance): the same on both sides, because both treasurers sign the same struct."""
    return alliance.struct_hash()


@dataclass(frozen=True, slots=True)
class AllianceStatus:
    alliance_id: bytes
    status: str
    nonce: int
    valid_until: int

    PRIMARY = "AllianceStatus"

    @classmethod
    def create(cls, *, alliance_id, status, nonce, valid_until) -> "AllianceStatus":
        if status not in ALLIANCE_STATUSES:
            raise E.InvalidInput(f"alliance status {status!r} must be one of {', '.join(ALLIANCE_STATUSES)}")
        return cls(_b32(alliance_id, "allianceId"), status, _uint(nonce, "nonce", UINT256_MAX),
                   _uint(valid_until, "validUntil", UINT64_MAX))

    def struct_hash(self) -> bytes:
        return keccak256(_TYPEHASH["AllianceStatus"] + self.alliance_id + _str(self.status)
                         + _u256(self.nonce) + _u256(self.valid_until))

    def message(self) -> dict:
        return {"allianceId": _hex(self.alliance_id), "status": self.status, "nonce": self.nonce,
                "validUntil": self.valid_until}


def check_alliance_terms(alliance: Alliance, *, own_community: bytes, currencies, now_ms: int) -> AllianceView:
    """Before recording an alliance here: this community is a party, every currency of our side
    is used here, and the signatures have not expired. Returns the alliance as this node sees it."""
    if own_community not in (alliance.community_a, alliance.community_b):
        raise E.InvalidInput("this community is not a party to the alliance")
    view = AllianceView(alliance, alliance.side_of(own_community))
    for p in alliance.pairs:
        ours = p.currency_a if view.own_side == "A" else p.currency_b
        if ours not in currencies:
            raise E.UnknownCurrency(f"currency {ours} is not used in this community")
    check_not_expired(alliance.valid_until, now_ms)
    return view


def alliance_signers(alliance: Alliance, signature_a: object, signature_b: object) -> tuple[str, str]:
    """The addresses that signed the terms, each under its own community's domain. Each node
    checks its own side's signer is one of its treasurers; the other side's is checked by
    reconcile-peer against the other log (a node cannot know the other's treasurers)."""
    digest = alliance.struct_hash()
    return (recover_signer(alliance.domain("A").digest(digest), signature_a),
            recover_signer(alliance.domain("B").digest(digest), signature_b))


def check_alliance_status_change(current: str, new: str) -> None:
    """`ended` is final (its peer account then only winds down); setting the same status twice
    is refused so every status entry records a real change."""
    if current == "ended":
        raise E.InvalidTransition("the alliance has ended; ending is final")
    if current == new:
        raise E.InvalidTransition(f"the alliance is already {new}")


@dataclass(frozen=True, slots=True)
class RemoteTransfer:
    """What a payer signs, under their own community's domain, to pay a member of an allied one."""

    payer: str
    payee_community: bytes
    payee: str
    currency: str
    amount: int
    payee_currency: str
    delivered: int
    nonce: int
    valid_until: int
    memo_hash: bytes = ZERO32

    PRIMARY = "RemoteTransfer"

    @classmethod
    def create(cls, *, payer, payee_community, payee, currency, amount, payee_currency, delivered,
               nonce, valid_until, memo_hash=ZERO32) -> "RemoteTransfer":
        return cls(normalize_address(payer, what="payer"), _b32(payee_community, "payeeCommunity"),
                   normalize_address(payee, what="payee"), _currency(currency, "currency"),
                   check_amount(_int_amount(amount)), _currency(payee_currency, "payeeCurrency"),
                   check_amount(_int_amount(delivered), what="delivered"),
                   _uint(nonce, "nonce", UINT256_MAX), _uint(valid_until, "validUntil", UINT64_MAX),
                   _b32(memo_hash, "memoHash"))

    @classmethod
    def from_message(cls, m: object) -> "RemoteTransfer":
        if not isinstance(m, dict):
            raise E.InvalidInput("a remote transfer must be an object")
        try:
            return cls.create(payer=m["payer"], payee_community=m["payeeCommunity"], payee=m["payee"],
                              currency=m["currency"], amount=m["amount"], payee_currency=m["payeeCurrency"],
                              delivered=m["delivered"], nonce=m["nonce"], valid_until=m["validUntil"],
                              memo_hash=m.get("memoHash", _hex(ZERO32)))
        except KeyError as exc:
            raise E.InvalidInput(f"remote transfer lacks {exc}") from None

    def struct_hash(self) -> bytes:
        return keccak256(
            _TYPEHASH["RemoteTransfer"] + _addr(self.payer) + self.payee_community + _addr(self.payee)
            + _str(self.currency) + _u256(self.amount) + _str(self.payee_currency) + _u256(self.delivered)
            + _u256(self.nonce) + _u256(self.valid_until) + self.memo_hash)

    def message(self) -> dict:
        return {"payer": self.payer, "payeeCommunity": _hex(self.payee_community), "payee": self.payee,
                "currency": self.currency, "amount": self.amount, "payeeCurrency": self.payee_currency,
                "delivered": self.delivered, "nonce": self.nonce, "validUntil": self.valid_until,
                "memoHash": _hex(self.memo_hash)}

    @property
    def signer_field(self) -> str:
        return self.payer


def payment_id(origin_domain: Domain, transfer: RemoteTransfer) -> bytes:
    """The payer's EIP-712 digest: unique per community, payer and nonce, known to both nodes."""
    return origin_domain.digest(transfer.struct_hash())


@dataclass(frozen=True, slots=True)
class NodeMessage:
    """One protocol message from one node to the other, signed with the sender's node key
    under the sender community's domain. `at` is the sender's clock in milliseconds."""

    alliance_id: bytes
    payment_id: bytes
    kind: str
    code: str
    at: int

    PRIMARY = "NodeMessage"

    @classmethod
    def create(cls, *, alliance_id, payment_id, kind, code="", at) -> "NodeMessage":
        if kind not in MESSAGE_KINDS:
            raise E.InvalidInput(f"message kind {kind!r} must be one of {', '.join(MESSAGE_KINDS)}")
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise E.InvalidInput("message code must be an error code (a-z, 0-9, _ and -, at most 64)")
        return cls(_b32(alliance_id, "allianceId"), _b32(payment_id, "paymentId"), kind, code,
                   _uint(at, "at", UINT64_MAX))

    @classmethod
    def from_message(cls, m: object) -> "NodeMessage":
        if not isinstance(m, dict):
            raise E.InvalidInput("a node message must be an object")
        try:
            return cls.create(alliance_id=m["allianceId"], payment_id=m["paymentId"], kind=m["kind"],
                              code=m["code"], at=m["at"])
        except KeyError as exc:
            raise E.InvalidInput(f"node message lacks {exc}") from None

    def struct_hash(self) -> bytes:
        return keccak256(_TYPEHASH["NodeMessage"] + self.alliance_id + self.payment_id + _str(self.kind)
                         + _str(self.code) + _u256(self.at))

    def message(self) -> dict:
        return {"allianceId": _hex(self.alliance_id), "paymentId": _hex(self.payment_id), "kind": self.kind,
                "code": self.code, "at": self.at}


FederationAction = Alliance | AllianceStatus | RemoteTransfer | NodeMessage


def full_message(domain: Domain, action: FederationAction) -> dict:
    """The complete EIP-712 document a wallet or node signs (eth_signTypedData_v4 / ethers),
    with every struct type the primary type references (CurrencyPair for Alliance)."""
    names = (action.PRIMARY,) + _REFERENCED.get(action.PRIMARY, ())
    return {"types": {"EIP712Domain": EIP712_TYPES["EIP712Domain"], **{n: EIP712_TYPES[n] for n in names}},
            "primaryType": action.PRIMARY, "domain": domain.as_eip712(), "message": action.message()}


def peer_address(community_id: bytes) -> str:
    """The address of the peer account standing for `community_id`: the last 20 bytes of
    keccak256("ayni.peer" ‖ id). No one holds its key, so it moves only by remote legs."""
    return to_checksum(keccak256(b"ayni.peer" + _b32(community_id, "community id"))[-20:].hex())


# --- rate ---------------------------------------------------------------------------------

def delivered_for(amount: int, pair: CurrencyPair, direction: str) -> int:
    """What the destination delivers for `amount` paid at the origin: amount × there / here,
    rounded DOWN, so a destination never delivers more than was paid for. The fraction below
    one minor unit there is not delivered; each log records both numbers of every payment, so
    the peer accounts still mirror exactly, payment by payment (docs/federation.md)."""
    check_amount(amount)
    if _direction(direction) == "AB":
        return amount * pair.units_b // pair.units_a
    return amount * pair.units_a // pair.units_b


def check_rate(transfer: RemoteTransfer, pair: CurrencyPair, direction: str) -> None:
    """The payer signed both amounts; they must match the rate in force, so no one pays at a
    rate they did not see and both nodes record the same two numbers."""
    here, there = pair.currencies(direction)
    if transfer.currency != here or transfer.payee_currency != there:
        raise E.RateMismatch(f"{transfer.currency}->{transfer.payee_currency} is not the pair {here}->{there}")
    expected = delivered_for(transfer.amount, pair, direction)
    if expected == 0:
        raise E.RateMismatch(f"{transfer.amount} {here} is too small to deliver one minor unit of {there}")
    if transfer.delivered != expected:
        raise E.RateMismatch(f"paying {transfer.amount} {here} delivers {expected} {there} at the alliance's rate "
                             f"{pair.units_a if direction == 'AB' else pair.units_b}:"
                             f"{pair.units_b if direction == 'AB' else pair.units_a}, not {transfer.delivered}")


# --- alliance as a node sees it ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AllianceView:
    """An alliance as recorded on one node: the terms, which side this node is, its status."""

    alliance: Alliance
    own_side: str
    status: str = "active"

    @property
    def alliance_id(self) -> bytes:
        return self.alliance.alliance_id

    @property
    def peer_side(self) -> str:
        return "B" if self.own_side == "A" else "A"

    @property
    def outgoing(self) -> str:
        """The direction of payments this node originates."""
        return "AB" if self.own_side == "A" else "BA"

    @property
    def incoming(self) -> str:
        return "BA" if self.own_side == "A" else "AB"

    @property
    def peer_account(self) -> str:
        """This node's account standing for the other community."""
        return peer_address(self.alliance.community(self.peer_side))

    def peer_limit(self, currency: str) -> int:
        """How far this node's peer account may go below zero in `currency` (one of ours)."""
        for p in self.alliance.pairs:
            if (p.currency_a if self.own_side == "A" else p.currency_b) == currency:
                return p.limit_a if self.own_side == "A" else p.limit_b
        raise E.UnknownCurrency(f"currency {currency} does not cross this alliance")


def find_alliance(alliances: dict[bytes, AllianceView], community: bytes) -> AllianceView:
    """The alliance with `community` (keyed by the other community's id), or unknown_alliance."""
    view = alliances.get(community)
    if view is None:
        raise E.UnknownAlliance(f"no alliance with community {_hex(community)} is recorded here")
    return view


def check_active(view: AllianceView) -> None:
    """New payments need an active alliance; payments already prepared finish regardless."""
    if view.status != "active":
        raise E.AllianceNotActive(f"the alliance {_hex(view.alliance_id)} is {view.status}")


# --- holds ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HeldPosition:
    """An account's standing in one currency with its holds: amounts reserved by undecided
    remote payments. `held_out` will leave the account if the payment commits; `held_in` will
    arrive. Holds are not balances (zero-sum counts balances only); they limit what may be
    spent or received meanwhile."""

    balance: int
    credit_limit: int
    ceiling: int | None
    held_out: int = 0
    held_in: int = 0

    @property
    def spendable(self) -> int:
        return self.balance - self.held_out + self.credit_limit


def _active(who: str, acct: AccountState | None, address: str) -> AccountState:
    if acct is None:
        raise E.UnknownAccount(f"{who} {address} has no account here")
    if acct.role in ("auditor", "peer"):
        # an auditor holds no money; a peer account moves only by remote legs
        raise E.NotAuthorised(f"{who} {address} is a {acct.role} account and cannot take part in a payment")
    if acct.status != "active":
        raise E.AccountNotActive(f"{who} account {address} is {acct.status}")
    return acct


def check_prepare_out(t: RemoteTransfer, *, now_ms: int, view: AllianceView | None,
                      payer: AccountState | None, payer_pos: HeldPosition | None) -> HeldPosition:
    """At the origin, before PREPARE: refuse, or return the payer's position with `amount`
    held. The hold counts against the payer's credit limit like a spent amount would."""
    if view is None:
        raise E.UnknownAlliance(f"no alliance with community {_hex(t.payee_community)} is recorded here")
    if t.payee_community != view.alliance.community(view.peer_side):
        raise E.UnknownAlliance(f"the payment is for community {_hex(t.payee_community)}, not this alliance's")
    check_active(view)
    check_rate(t, view.alliance.pair_for(t.currency, view.outgoing), view.outgoing)
    check_not_expired(t.valid_until, now_ms)
    _active("payer", payer, t.payer)
    if payer_pos is None:
        raise E.IntegrityViolation(f"the payer has no {t.currency} position")
    if payer_pos.balance - payer_pos.held_out - t.amount < -payer_pos.credit_limit:
        raise E.CreditLimitExceeded(f"payer can spend {max(0, payer_pos.spendable)} {t.currency} "
                                    f"(holds included), not {t.amount}")
    return replace(payer_pos, held_out=payer_pos.held_out + t.amount)


def check_prepare_in(t: RemoteTransfer, *, now_ms: int, view: AllianceView | None,
                     payee: AccountState | None, payee_pos: HeldPosition | None,
                     peer_pos: HeldPosition | None) -> tuple[HeldPosition, HeldPosition]:
    """At the destination, on PREPARE: refuse (vote REFUSED, nothing written), or return the
    (peer account, payee) positions with `delivered` held out of the peer account and held in
    for the payee. The peer limit is what this community risks on the other one."""
    if view is None:
        raise E.UnknownAlliance("no alliance with the paying community is recorded here")
    check_active(view)
    if t.payee_community != view.alliance.community(view.own_side):
        raise E.UnknownAlliance(f"the payment is for community {_hex(t.payee_community)}, not this one")
    # the transfer's `currency` is the origin's: the pair is found by it
    check_rate(t, view.alliance.pair_for(t.currency, view.incoming), view.incoming)
    check_not_expired(t.valid_until, now_ms)
    _active("payee", payee, t.payee)
    if peer_pos is None or payee_pos is None:
        raise E.IntegrityViolation(f"an account has no {t.payee_currency} position")
    d = t.delivered
    if peer_pos.balance - peer_pos.held_out - d < -peer_pos.credit_limit:
        raise E.PeerLimitReached(
            f"the other community may owe at most {peer_pos.credit_limit} {t.payee_currency} here; "
            f"{max(0, peer_pos.spendable)} is left (pending payments included), not {d}")
    if payee_pos.ceiling is not None and payee_pos.balance + payee_pos.held_in + d > payee_pos.ceiling:
        raise E.CeilingExceeded(f"payee would exceed its ceiling of {payee_pos.ceiling} {t.payee_currency} "
                                "(pending incoming payments included)")
    if payee_pos.balance + payee_pos.held_in + d > MAX_BALANCE:
        raise E.BalanceOverflow("the balance would leave the representable range")
    return replace(peer_pos, held_out=peer_pos.held_out + d), replace(payee_pos, held_in=payee_pos.held_in + d)


def check_local_transfer(amount: int, payer_pos: HeldPosition, payee_pos: HeldPosition) -> None:
    """A local transfer when holds exist: what is held out cannot be spent again, and what is
    held in already counts toward the payee's ceiling (the rule rules.check_transfer adopts)."""
    if payer_pos.balance - payer_pos.held_out - amount < -payer_pos.credit_limit:
        raise E.CreditLimitExceeded(f"payer can spend {max(0, payer_pos.spendable)} (holds included), not {amount}")
    if payee_pos.ceiling is not None and payee_pos.balance + payee_pos.held_in + amount > payee_pos.ceiling:
        raise E.CeilingExceeded("payee would exceed its ceiling (pending incoming payments included)")


def _release(pos: HeldPosition, out: int = 0, in_: int = 0) -> HeldPosition:
    if pos.held_out < out or pos.held_in < in_:
        raise E.IntegrityViolation("a remote payment releases more than is held")
    return replace(pos, held_out=pos.held_out - out, held_in=pos.held_in - in_)


def apply_commit_out(amount: int, payer_pos: HeldPosition, peer_pos: HeldPosition) -> tuple[HeldPosition,
                                                                                          HeldPosition]:
    """Origin decided COMMIT: the payer's hold becomes the debit, the peer account is credited.
    No rule is re-checked: the hold reserved the room, and a decision is final."""
    payer = _release(payer_pos, out=amount)
    return replace(payer, balance=payer.balance - amount), replace(peer_pos, balance=peer_pos.balance + amount)


def apply_commit_in(delivered: int, peer_pos: HeldPosition, payee_pos: HeldPosition) -> tuple[HeldPosition,
                                                                                            HeldPosition]:
    """Destination learned COMMIT: the peer account pays the payee what was held."""
    peer, payee = _release(peer_pos, out=delivered), _release(payee_pos, in_=delivered)
    return replace(peer, balance=peer.balance - delivered), replace(payee, balance=payee.balance + delivered)


def apply_abort(amount: int, held_out_pos: HeldPosition,
                held_in_pos: HeldPosition | None = None) -> tuple[HeldPosition, ...]:
    """ABORT releases the holds, moving no money: at the origin (payer,), at the destination
    (peer account, payee)."""
    if held_in_pos is None:
        return (_release(held_out_pos, out=amount),)
    return _release(held_out_pos, out=amount), _release(held_in_pos, in_=amount)


# --- node messages ---------------------------------------------------------------------------

def sign_node_message(node_key: bytes, sender_domain: Domain, msg: NodeMessage) -> str:
    return sign_digest(node_key, sender_domain.digest(msg.struct_hash()))


def verify_node_message(msg: NodeMessage, signature: object, view: AllianceView | None, *,
                        now_ms: int | None = None, window_ms: int = 300_000) -> None:
    """Accept a message from the other node of `view`'s alliance, or raise: unknown_alliance
    (no such alliance here), wrong_node_signature (not the node key the terms name),
    stale_node_message (signed more than `window_ms` from our clock: a replay or a bad clock).
    `now_ms=None` skips the window: replay checks a carried message long after it was sent."""
    if view is None or msg.alliance_id != view.alliance_id:
        raise E.UnknownAlliance(f"alliance {_hex(msg.alliance_id)} is not recorded here")
    sender = view.peer_side
    try:
        signer = recover_signer(view.alliance.domain(sender).digest(msg.struct_hash()), signature)
    except E.BadSignature as exc:
        raise E.WrongNodeSignature(f"node message signature is unusable: {exc.message}") from None
    if signer != view.alliance.node(sender):
        raise E.WrongNodeSignature(f"node message signed by {signer}, not by node {view.alliance.node(sender)}")
    if now_ms is not None and abs(now_ms - msg.at) > window_ms:
        raise E.StaleNodeMessage(f"node message signed at {msg.at} ms, more than {window_ms} ms from now ({now_ms})")


class ReplayWindow:
    """The node messages already accepted within the window, by digest. Every send is signed
    afresh (a new `at`), so the same signed message arriving twice is a network duplicate or a
    replay: refused as stale_node_message. Volatile on purpose: after a restart a replay inside
    the window is handled idempotently by the protocol, so forgetting is safe, only less strict.
    Not thread-safe: one per node, used under the node's lock."""

    def __init__(self, window_ms: int = 300_000):
        self.window_ms = window_ms
        self._seen: dict[bytes, int] = {}

    def check_and_remember(self, digest: bytes, at: int, now_ms: int) -> None:
        """Call after verify_node_message accepted the message and its handling succeeded."""
        if len(self._seen) > 4096:  # prune what the window already refuses
            self._seen = {d: t for d, t in self._seen.items() if now_ms - t <= self.window_ms}
        if digest in self._seen:
            raise E.StaleNodeMessage("this node message was already received (a replay or a duplicate)")
        self._seen[digest] = at


__all__ = ["ReplayWindow", "check_alliance_terms", "alliance_signers", 
    "CURRENCY_PAIR_TYPE", "ALLIANCE_TYPE", "ALLIANCE_STATUS_TYPE", "REMOTE_TRANSFER_TYPE", "NODE_MESSAGE_TYPE",
    "EIP712_TYPES", "CurrencyPair", "Alliance", "AllianceStatus", "RemoteTransfer", "NodeMessage", "AllianceView",
    "HeldPosition", "alliance_id", "payment_id", "full_message", "peer_address", "delivered_for", "check_rate",
    "find_alliance", "check_active", "check_alliance_status_change", "check_prepare_out", "check_prepare_in",
    "check_local_transfer", "apply_commit_out", "apply_commit_in", "apply_abort", "sign_node_message",
    "verify_node_message",
]
