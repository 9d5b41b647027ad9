"""Request bodies (validated at the edge with pydantic) and the examples OpenAPI shows.

Numbers that can exceed 2**53 (nonces, validUntil) travel as decimal strings; amounts
may be either (they never exceed 2**53 - 1). See docs/typed-data.md.

Strict at the edge: a JSON number with a fraction or an exponent (`11.0`, `1.15e18`) is not an
integer, even when its value is whole. pydantic's lax mode would round it into one; money and
nonces must arrive exactly as signed, so such a body is refused with `invalid_input` (422)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

ZERO32 = "0x" + "00" * 32
Uint = StrictInt | StrictStr


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


class ChallengeIn(Strict):
    address: str = Field(examples=["0x0c6C78f7274A93b337Fe4177034D8aDCe9Dd1807"])


class TokenIn(Strict):
    message: str = Field(description="the EIP-4361 message exactly as issued")
    signature: str = Field(description="personal_sign signature of the message")


class RequestIn(Strict):
    payer: str
    currency: str
    amount: Uint
    memo: str | None = Field(None, max_length=500)
    expiresInSeconds: StrictInt = Field(86_400, ge=60, le=90 * 86_400)


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
