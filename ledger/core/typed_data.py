"""EIP-712 typed data: what members and treasurers sign.

The hashing is written out by hand for our fixed types (hashStruct of static
fields is a handful of keccak calls) because the generic encoder costs as much as
the signature recovery itself; tests prove it byte-equal to eth-account's
`encode_typed_data`. Exact type strings: docs/typed-data.md.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import coincurve

from .addresses import address_from_public_key, normalize_address
from .amounts import CURRENCY_CODE, MAX_AMOUNT, check_amount
from .errors import BadSignature, InvalidInput
from .codec import hex0x
from .hashing import ZERO32, keccak256
from .vocab import ROLES, STATUSES

DOMAIN_NAME = "Ayni"
DOMAIN_VERSION = "1"
UINT256_MAX = 2**256 - 1
UINT64_MAX = 2**64 - 1
# secp256k1 group order; signatures with s above n/2 are malleable twins (EIP-2).
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,bytes32 salt)"
TRANSFER_TYPE = (
    "Transfer(address payer,address payee,string currency,uint256 amount,uint256 nonce,"
    "uint64 validUntil,bytes32 memoHash,bytes32 requestId)"
)
OPEN_ACCOUNT_TYPE = "OpenAccount(address account,string role,uint256 nonce,uint64 validUntil)"
SET_LIMIT_TYPE = (
    "SetLimit(address account,string currency,uint256 creditLimit,bool hasCeiling,uint256 ceiling,"
    "uint256 nonce,uint64 validUntil)"
)
SET_STATUS_TYPE = "SetStatus(address account,string status,uint256 nonce,uint64 validUntil)"

_TYPEHASH = {t.split("(")[0]: keccak256(t.encode()) for t in
             (DOMAIN_TYPE, TRANSFER_TYPE, OPEN_ACCOUNT_TYPE, SET_LIMIT_TYPE, SET_STATUS_TYPE)}



def _u256(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _addr(a: str) -> bytes:
    return b"\x00" * 12 + bytes.fromhex(a[2:])


def _str(s: str) -> bytes:
    return keccak256(s.encode("utf-8"))


_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}", re.ASCII)
_HEX65 = re.compile(r"0x[0-9a-fA-F]{130}", re.ASCII)
_DIGITS = re.compile(r"[0-9]{1,78}", re.ASCII)  # uint256 has at most 78 decimal digits


def _b32(value: object, what: str) -> bytes:
    if isinstance(value, bytes) and len(value) == 32:
        return value
    if isinstance(value, str) and _HEX32.fullmatch(value):
        return bytes.fromhex(value[2:])
    raise InvalidInput(f"{what} must be 32 bytes as 0x-prefixed hex")


def _uint(value: object, what: str, maximum: int) -> int:
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidInput(f"{what} must be an integer between 0 and {maximum}")
    return value


@dataclass(frozen=True, slots=True)
class Domain:
    """The community's EIP-712 domain. `salt` is the community id: random, fixed at init,
    so a signature made for one community never verifies in another, even on one chain."""

    chain_id: int
    salt: bytes
    name: str = DOMAIN_NAME
    version: str = DOMAIN_VERSION
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _uint(self.chain_id, "chainId", UINT256_MAX)
        _b32(self.salt, "salt")
        sep = keccak256(_TYPEHASH["EIP712Domain"] + _str(self.name) + _str(self.version)
                        + _u256(self.chain_id) + self.salt)
        object.__setattr__(self, "separator", sep)

    def as_eip712(self) -> dict:
        return {"name": self.name, "version": self.version, "chainId": self.chain_id,
                "salt": hex0x(self.salt)}

    def digest(self, struct_hash: bytes) -> bytes:
        return keccak256(b"\x19\x01" + self.separator + struct_hash)


def memo_hash(memo: str | None, salt: bytes | None) -> bytes:
    """keccak256(salt ‖ utf8(memo)); an absent or empty memo commits to zero.
    Erasing a memo deletes memo and salt: the hash then reveals nothing."""
    if not memo:
        return ZERO32
    if salt is None or len(salt) != 32:
        raise InvalidInput("a memo needs a 32-byte salt")
    return keccak256(salt + memo.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Transfer:
    payer: str
    payee: str
    currency: str
    amount: int
    nonce: int
    valid_until: int
    memo_hash: bytes = ZERO32
    request_id: bytes = ZERO32

    PRIMARY = "Transfer"

    @classmethod
    def create(cls, *, payer, payee, currency, amount, nonce, valid_until,
               memo_hash=ZERO32, request_id=ZERO32) -> "Transfer":
        """Build from untrusted values, with a clear error for each malformed field."""
        if not isinstance(currency, str) or not CURRENCY_CODE.fullmatch(currency):
            raise InvalidInput(f"currency {currency!r} is not a currency code")
        return cls(
            payer=normalize_address(payer, what="payer"),
            payee=normalize_address(payee, what="payee"),
            currency=currency,
            amount=check_amount(_int_amount(amount)),
            nonce=_uint(nonce, "nonce", UINT256_MAX),
            valid_until=_uint(valid_until, "validUntil", UINT64_MAX),
            memo_hash=_b32(memo_hash, "memoHash"),
            request_id=_b32(request_id, "requestId"),
        )

    def struct_hash(self) -> bytes:
        return keccak256(
            _TYPEHASH["Transfer"] + _addr(self.payer) + _addr(self.payee) + _str(self.currency)
            + _u256(self.amount) + _u256(self.nonce) + _u256(self.valid_until)
            + self.memo_hash + self.request_id
        )

    def message(self) -> dict:
        return {"payer": self.payer, "payee": self.payee, "currency": self.currency,
                "amount": self.amount, "nonce": self.nonce, "validUntil": self.valid_until,
                "memoHash": hex0x(self.memo_hash), "requestId": hex0x(self.request_id)}

    @property
    def signer_field(self) -> str:
        return self.payer


@dataclass(frozen=True, slots=True)
class OpenAccount:
    account: str
    role: str
    nonce: int
    valid_until: int

    PRIMARY = "OpenAccount"

    @classmethod
    def create(cls, *, account, role, nonce, valid_until) -> "OpenAccount":
        if role not in ROLES:
            raise InvalidInput(f"role {role!r} must be one of {', '.join(ROLES)}")
        return cls(normalize_address(account, what="account"), role,
                   _uint(nonce, "nonce", UINT256_MAX), _uint(valid_until, "validUntil", UINT64_MAX))

    def struct_hash(self) -> bytes:
        return keccak256(_TYPEHASH["OpenAccount"] + _addr(self.account) + _str(self.role)
                         + _u256(self.nonce) + _u256(self.valid_until))

    def message(self) -> dict:
        return {"account": self.account, "role": self.role, "nonce": self.nonce,
                "validUntil": self.valid_until}


@dataclass(frozen=True, slots=True)
class SetLimit:
    account: str
    currency: str
    credit_limit: int
    ceiling: int | None
    nonce: int
    valid_until: int

    PRIMARY = "SetLimit"

    @classmethod
    def create(cls, *, account, currency, credit_limit, ceiling, nonce, valid_until) -> "SetLimit":
        if not isinstance(currency, str) or not CURRENCY_CODE.fullmatch(currency):
            raise InvalidInput(f"currency {currency!r} is not a currency code")
        return cls(
            normalize_address(account, what="account"), currency,
            check_amount(_int_amount(credit_limit), what="credit limit", allow_zero=True),
            None if ceiling is None else check_amount(_int_amount(ceiling), what="ceiling", allow_zero=True),
            _uint(nonce, "nonce", UINT256_MAX), _uint(valid_until, "validUntil", UINT64_MAX))

    def struct_hash(self) -> bytes:
        return keccak256(_TYPEHASH["SetLimit"] + _addr(self.account) + _str(self.currency)
                         + _u256(self.credit_limit) + _u256(self.ceiling is not None)
                         + _u256(self.ceiling or 0) + _u256(self.nonce) + _u256(self.valid_until))

    def message(self) -> dict:
        return {"account": self.account, "currency": self.currency, "creditLimit": self.credit_limit,
                "hasCeiling": self.ceiling is not None, "ceiling": self.ceiling or 0,
                "nonce": self.nonce, "validUntil": self.valid_until}


@dataclass(frozen=True, slots=True)
class SetStatus:
    account: str
    status: str
    nonce: int
    valid_until: int

    PRIMARY = "SetStatus"

    @classmethod
    def create(cls, *, account, status, nonce, valid_until) -> "SetStatus":
        if status not in STATUSES:
            raise InvalidInput(f"status {status!r} must be one of {', '.join(STATUSES)}")
        return cls(normalize_address(account, what="account"), status,
                   _uint(nonce, "nonce", UINT256_MAX), _uint(valid_until, "validUntil", UINT64_MAX))

    def struct_hash(self) -> bytes:
        return keccak256(_TYPEHASH["SetStatus"] + _addr(self.account) + _str(self.status)
                         + _u256(self.nonce) + _u256(self.valid_until))

    def message(self) -> dict:
        return {"account": self.account, "status": self.status, "nonce": self.nonce,
                "validUntil": self.valid_until}


Action = Transfer | OpenAccount | SetLimit | SetStatus

EIP712_TYPES = {
    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                     {"name": "chainId", "type": "uint256"}, {"name": "salt", "type": "bytes32"}],
}
for _t in (TRANSFER_TYPE, OPEN_ACCOUNT_TYPE, SET_LIMIT_TYPE, SET_STATUS_TYPE):
    _name, _fields = _t[:-1].split("(")
    EIP712_TYPES[_name] = [{"name": f.split(" ")[1], "type": f.split(" ")[0]} for f in _fields.split(",")]


def full_message(domain: Domain, action: Action) -> dict:
    """The complete EIP-712 document a wallet signs (eth_signTypedData_v4 / ethers)."""
    return {"types": {"EIP712Domain": EIP712_TYPES["EIP712Domain"], action.PRIMARY: EIP712_TYPES[action.PRIMARY]},
            "primaryType": action.PRIMARY, "domain": domain.as_eip712(), "message": action.message()}


def _int_amount(value: object) -> object:
    # JSON clients may send big integers as decimal strings; accept those, nothing looser.
    if isinstance(value, str) and _DIGITS.fullmatch(value) and len(value) <= 20:
        return int(value)
    return value


def parse_signature(signature: object) -> bytes:
    """65-byte r‖s‖v (v 27/28 or 0/1), hex with 0x; low-s only, so one message has one valid form."""
    if isinstance(signature, str):
        if not _HEX65.fullmatch(signature):
            raise BadSignature("signature must be 65 bytes as 0x-prefixed hex")
        sig = bytes.fromhex(signature[2:])
    elif isinstance(signature, bytes) and len(signature) == 65:
        sig = signature
    else:
        raise BadSignature("signature must be 65 bytes")
    v = sig[64]
    if v in (27, 28):
        v -= 27
    if v not in (0, 1):
        raise BadSignature(f"signature recovery id v={sig[64]} is not 27/28 or 0/1")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    if not (0 < r < _SECP256K1_N and 0 < s <= _SECP256K1_N // 2):
        raise BadSignature("signature has r or s out of range (high-s signatures are refused, EIP-2)")
    return sig[:64] + bytes([v])


def canonical_signature(signature: object) -> str:
    """The one stored form of a valid signature: lowercase hex, v = 27/28."""
    sig = parse_signature(signature)
    return hex0x(sig[:64]) + format(sig[64] + 27, "02x")


def recover_signer(digest: bytes, signature: object) -> str:
    return _recover(bytes(digest), parse_signature(signature))


@functools.lru_cache(maxsize=4096)
def _recover(digest: bytes, sig: bytes) -> str:
    # pure, and the costliest step of a check: a federation message is recovered when it arrives
    # and again by the rule of the entry that carries it, in the same process (not cached: errors)
    try:
        pub = coincurve.PublicKey.from_signature_and_message(sig, digest, hasher=None)
    except Exception:  # coincurve raises plain Exception on unrecoverable input
        raise BadSignature("signature does not recover to any public key") from None
    return address_from_public_key(pub.format(compressed=False))


def sign_digest(private_key: bytes, digest: bytes) -> str:
    """Sign a 32-byte digest (used by the demo, tests and the wallet; never by the server)."""
    sig = coincurve.PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    return hex0x(sig[:64]) + format(sig[64] + 27, "02x")


def sign_action(private_key: bytes, domain: Domain, action: Action) -> str:
    return sign_digest(private_key, domain.digest(action.struct_hash()))


def address_of_key(private_key: bytes) -> str:
    return address_from_public_key(coincurve.PrivateKey(private_key).public_key.format(compressed=False))


__all__ = [
    "Domain", "Transfer", "OpenAccount", "SetLimit", "SetStatus", "Action", "memo_hash",
    "recover_signer", "sign_action", "sign_digest", "address_of_key", "full_message",
    "parse_signature", "MAX_AMOUNT", "ROLES", "STATUSES", "EIP712_TYPES",
]


def action_from_message(primary_type: object, message: object) -> Action:
    """The action a wallet signed, from its EIP-712 primary type and message (the inverse of
    `Action.message()`, as `POST /v1/admin/actions` receives it). Values are checked by each
    type's `create`; a missing or mistyped field is InvalidInput naming it."""
    if not isinstance(message, dict):
        raise InvalidInput(f"{primary_type} message must be an object")
    m = message
    try:
        common = {"nonce": m["nonce"], "valid_until": m["validUntil"]}
        if primary_type == "Transfer":
            return Transfer.create(payer=m["payer"], payee=m["payee"], currency=m["currency"],
                                   amount=m["amount"], memo_hash=m.get("memoHash", ZERO32),
                                   request_id=m.get("requestId", ZERO32), **common)
        if primary_type == "OpenAccount":
            return OpenAccount.create(account=m["account"], role=m["role"], **common)
        if primary_type == "SetLimit":
            has_ceiling = m.get("hasCeiling", False)
            if not isinstance(has_ceiling, bool):
                raise InvalidInput("SetLimit hasCeiling must be true or false")
            return SetLimit.create(account=m["account"], currency=m["currency"], credit_limit=m["creditLimit"],
                                   ceiling=m["ceiling"] if has_ceiling else None, **common)
        if primary_type == "SetStatus":
            return SetStatus.create(account=m["account"], status=m["status"], **common)
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"{primary_type} message is missing or mistypes {exc}") from None
    raise InvalidInput(f"{primary_type!r} is not a type of signed action")
