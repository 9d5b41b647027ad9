"""Request bodies (validated at the edge with pydantic) and the examples OpenAPI shows.

Numbers that can exceed 2**53 (nonces, validUntil) travel as decimal strings; amounts
may be either (they never exceed 2**53 - 1). See docs/typed-data.md.

Strict at the edge: a JSON number with a fraction or an exponent (`11.0`, `1.15e18`) is not an
integer, even when its value is whole. pydantic's lax mode would round it into one; money and
nonces must arrive exactly as signed, so such a body is refused with `invalid_input` (422).
The one rule, for bodies, queries and paths alike: wherever an integer is expected, anything
else (`3.0`, `"3.0"`, `"1e3"`, `" 3"`, `true`) is `invalid_input` (422); an integer that the
rules refuse (0, negative, too large) keeps its own code (e.g. `invalid_amount`, 400)."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, field_validator

ZERO32 = "0x" + "00" * 32
MAX_SEQ = 2**63 - 1  # a log seq is a signed 64-bit integer in the database
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_SIGNED_DIGITS = re.compile(r"-?[0-9]+", re.ASCII)
NOT_AN_INTEGER = "must be an integer: a JSON number without fraction or exponent, or a string of decimal digits"
# integer fields of the EIP-712 admin messages (docs/typed-data.md), checked at the edge like Uint
ADMIN_INTEGER_FIELDS = ("creditLimit", "ceiling", "nonce", "validUntil", "amount")


def _json_integer(value):
    """A JSON integer, or a string of decimal digits (numbers beyond 2**53 travel as text)."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _DIGITS.fullmatch(value))):
        raise ValueError(NOT_AN_INTEGER)
    return value


def _digits_param(value):
    """A query or path integer: optional '-' and decimal digits, nothing else (no '1.0', '1e3')."""
    if isinstance(value, str) and not _SIGNED_DIGITS.fullmatch(value):
        raise ValueError("must be a whole number written with decimal digits only")
    return value


Uint = Annotated[StrictInt | StrictStr, BeforeValidator(_json_integer)]
IntParam = Annotated[int, BeforeValidator(_digits_param)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TransferMessage(Strict):
    payer: str = Field(examples=["0x0c6C78f7274A93b337Fe4177034D8aDCe9Dd1807"])
    payee: str = Field(examples=["0xF2b142AC2987e5a86AfFC2b952628FcdC3d0AbfA"])
    currency: str = Field(examples=["HOUR"])
    amount: Uint = Field(description="minor units: minutes for HOUR, cents for CRED", examples=[90])
    nonce: Uint = Field(description="any unused number of the payer, as a decimal string", examples=["1"])
    validUntil: Uint = Field(description="unix seconds", examples=["1893456000"])
    memoHash: str = Field(ZERO32, description="keccak256(salt ‖ utf8(memo)) or zero")
    requestId: str = Field(ZERO32, description="the payment request this settles, or zero")


class PostTransfer(Strict):
    transfer: TransferMessage
    signature: str = Field(description="65-byte EIP-712 signature by the payer, 0x hex")
    memo: str | None = Field(None, max_length=500, description="kept off the log; erasable")
    memoSalt: str | None = Field(None, description="the 32-byte salt of memoHash, 0x hex")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "transfer": {"payer": "0x0c6C78f7274A93b337Fe4177034D8aDCe9Dd1807",
                     "payee": "0xF2b142AC2987e5a86AfFC2b952628FcdC3d0AbfA", "currency": "HOUR",
                     "amount": 90, "nonce": "1", "validUntil": "1893456000",
                     "memoHash": "0x40fd4a038facefe55d1528284dea3d51fcc23c1af0865eea3a26e18d9883b55a",
                     "requestId": ZERO32},
        "signature": "0x54f94c32d6916d06a3a1d669c3cb41d78d2917fd3e2d55e87becedbc6d027268"
                     "471d2d07080d35bb362e07c3d8a0506041d6e09b0a8c65b9dc56152d6e20b4191b",
        "memo": "home visit", "memoSalt": "0x" + "11" * 32}]})


class AdminAction(Strict):
    type: Literal["OpenAccount", "SetLimit", "SetStatus"]
    message: dict = Field(description="the EIP-712 message fields of that type (docs/typed-data.md)",
                          examples=[{"account": "0xF2b142AC2987e5a86AfFC2b952628FcdC3d0AbfA", "role": "member",
                                     "nonce": "7", "validUntil": "1893456000"}])
    signature: str = Field(description="65-byte EIP-712 signature by an active treasurer")

    @field_validator("message")
    @classmethod
    def _integers_are_integers(cls, message: dict) -> dict:
        for name in ADMIN_INTEGER_FIELDS:
            if name in message:
                try:
                    _json_integer(message[name])
                except ValueError:
                    raise ValueError(f"{name} {NOT_AN_INTEGER}") from None
        return message


class ChallengeIn(Strict):
    address: str = Field(examples=["0x0c6C78f7274A93b337Fe4177034D8aDCe9Dd1807"])


class TokenIn(Strict):
    message: str = Field(description="the EIP-4361 message exactly as issued")
    signature: str = Field(description="personal_sign signature of the message")


class RequestIn(Strict):
    payer: str | None = Field(None, description="omitted: an open request, any active member pays it once "
                              "(a shop's till, docs/shops.md)")
    currency: str
    amount: Uint | None = Field(None, description="required unless totalMinor (a mixed payment) is given")
    memo: str | None = Field(None, max_length=500)
    expiresInSeconds: StrictInt = Field(86_400, ge=60, le=90 * 86_400)
    till: str | None = Field(None, max_length=64, description="a till or staff label (docs/shops.md)")
    totalMinor: Uint | None = Field(None, description="mixed payment: the whole price; amount = its credit part")
    creditShareBp: StrictInt | None = Field(None, description="mixed payment: share in credit, basis points")


class ErrorDetail(Strict):
    code: str = Field(examples=["credit_limit_exceeded"])
    message: str = Field(examples=["payer would reach -11h HOUR, below the credit limit of -10h (can still spend 30m)"])


class Error(Strict):
    """Every client fault, whatever the status."""

    error: ErrorDetail


# -- data sovereignty (ledger/privacy, docs/privacy.md) ----------------------------------------

class GrantIn(Strict):
    grantee: dict[str, str] = Field(description='exactly one of {"role": member|shop|treasurer}, '
                                    '{"account": "0x..."}, {"organisation": "name"}',
                                    examples=[{"organisation": "Cuidado Research Group"}])
    category: str = Field(description="a data category declared in GET /v1/data-policy", examples=["entries"])
    purpose: str = Field(description="a grantable (non-essential) purpose of the policy", examples=["research"])
    until: str = Field(description="end of the grant (exclusive), ISO 8601 with zone, at most 9999-12-31T23:59:59Z",
                       examples=["2027-06-30T00:00:00Z"])


class ProfileIn(Strict):
    displayName: str | None = Field(None, max_length=120, examples=["Rosa"])
    contact: str | None = Field(None, max_length=240, examples=["rosa@example.org"])


class ErasureIn(Strict):
    memos: bool = Field(True, description="erase the memos of every transfer and payment request you are party to")
    profile: bool = Field(True, description="erase your display name and contact")
    board: bool = Field(True, description="erase your exchange board data: your listings with their "
                        "conversations, and every conversation you answered (messages, arrangements, notes)")
