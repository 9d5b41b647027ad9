"""Client-side helpers that build and sign actions with a private key: the demo,
tests, benchmarks and the wallet use them; the service never holds a member's key."""
from __future__ import annotations

import secrets
import time

from .core.hashing import ZERO32
from .core.typed_data import (Domain, OpenAccount, SetLimit, SetStatus, Transfer, address_of_key,
                              memo_hash, sign_action)
from .service import Submission

DEFAULT_VALIDITY_S = 3600


def new_key() -> bytes:
    return secrets.token_bytes(32)


def new_nonce() -> int:
    # Unordered unique nonces: 128 random bits never collide in practice, and a payer
    # can sign several payments offline without coordinating a counter.
    return secrets.randbits(128)


def _valid_until(valid_for: int) -> int:
    return int(time.time()) + valid_for


def transfer(key: bytes, domain: Domain, *, payee: str, currency: str, amount: int,
             memo: str | None = None, nonce: int | None = None, valid_for: int = DEFAULT_VALIDITY_S,
             request_id: bytes = ZERO32) -> Submission:
    salt = secrets.token_bytes(32) if memo else None
    t = Transfer.create(payer=address_of_key(key), payee=payee, currency=currency, amount=amount,
                        nonce=new_nonce() if nonce is None else nonce,
                        valid_until=_valid_until(valid_for), memo_hash=memo_hash(memo, salt),
                        request_id=request_id)
    return Submission(t, sign_action(key, domain, t), memo, salt)


def open_account(treasurer_key: bytes, domain: Domain, *, account: str, role: str = "member",
                 valid_for: int = DEFAULT_VALIDITY_S) -> Submission:
    a = OpenAccount.create(account=account, role=role, nonce=new_nonce(), valid_until=_valid_until(valid_for))
    return Submission(a, sign_action(treasurer_key, domain, a))


def set_limit(treasurer_key: bytes, domain: Domain, *, account: str, currency: str, credit_limit: int,
              ceiling: int | None = None, valid_for: int = DEFAULT_VALIDITY_S) -> Submission:
    a = SetLimit.create(account=account, currency=currency, credit_limit=credit_limit, ceiling=ceiling,
                        nonce=new_nonce(), valid_until=_valid_until(valid_for))
    return Submission(a, sign_action(treasurer_key, domain, a))


def set_status(treasurer_key: bytes, domain: Domain, *, account: str, status: str,
               valid_for: int = DEFAULT_VALIDITY_S) -> Submission:
    a = SetStatus.create(account=account, status=status, nonce=new_nonce(), valid_until=_valid_until(valid_for))
    return Submission(a, sign_action(treasurer_key, domain, a))


def transfer_json(sub: Submission) -> dict:
    """The body of POST /v1/transfers for a signed transfer: big integers as decimal
    strings, bytes as 0x hex (docs/typed-data.md, "Carrying typed data in JSON")."""
    t = sub.action
    body = {"transfer": {"payer": t.payer, "payee": t.payee, "currency": t.currency, "amount": t.amount,
                         "nonce": str(t.nonce), "validUntil": str(t.valid_until),
                         "memoHash": "0x" + t.memo_hash.hex(), "requestId": "0x" + t.request_id.hex()},
            "signature": sub.signature}
    if sub.memo:
        body.update(memo=sub.memo, memoSalt="0x" + sub.memo_salt.hex())
    return body
