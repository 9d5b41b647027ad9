"""Payment requests: a payee (a shop, a carer) asks a payer for an amount; the payer pays by
signing an ordinary Transfer whose `requestId` names the request, or declines.

Where the truth lives, and why a request can never be paid twice
----------------------------------------------------------------
`Ledger.submit` (ledger/service.py) owns its own transaction and knows nothing about
requests, so the request row cannot be marked paid in the transaction that posts the
transfer without changing the service. Instead:

1. **The log is the source of truth for "paid".** A request is paid iff the `transfers`
   projection holds a transfer with `request_id` = the request's id *and* exactly its payer,
   payee, currency and amount. Every read derives the status from that join, so it is right
   even if the process dies between posting and the cache update below.
2. **A second payment is impossible at the database level.** Migration 0003 adds the
   partial unique index `uq_transfers_request_key` on transfers (request_id, payer, payee,
   currency, amount) WHERE request_id IS NOT NULL. Two concurrent `pay()` calls with two
   *different* signed transfers (different nonces) for one request both pass the checks
   below, but only one transfer row can ever be inserted: the other posting transaction
   fails on the unique index and rolls back completely (no entry, no balance change, no
   gap in seq). The index covers the whole key, not just request_id, so somebody who learns
   a request id cannot block it by posting an unrelated transfer that merely names it; such
   a transfer is simply not a payment of the request.
   Today the refused posting surfaces from `Ledger.submit` as the driver's IntegrityError
   (sqlite3.IntegrityError / psycopg.errors.UniqueViolation), which `pay()` turns into
   `request_not_open`. The recommended change to ledger/service.py (check the key under the
   head lock and refuse with code `request_already_paid`) makes it a clean refusal that does
   not sink the other transfers of a group-commit batch; `pay()` handles both.
3. **Retries are idempotent.** Re-sending the same signed transfer returns the original
   `Posted` (duplicate=True, same seq): `pay()` recognises it by (signer, nonce, digest) in
   `signed_actions` before anything else, and the ledger's own nonce check does the same.
4. `status`/`paid_seq` in the row are a cache written after a successful posting;
   `declined_at` and status `declined` are the payer's explicit refusal; `expired` is never
   stored, it is computed on read (open and now > expires_at).

Known, accepted windows (both closed by the recommended service change, which checks
under the head lock with the entry's own timestamp):
- `pay()` checks expiry just before posting; a posting that starts a few milliseconds
  before `expires_at` may be written just after it.
- On PostgreSQL a decline and a pay of the same request racing each other (both can only
  be done by the payer) may both succeed; the money moved, so the request reads as paid.
Every transfer that names a request should go through `pay()` (the HTTP API does): a
transfer posted directly with `Ledger.submit` skips the open/expired checks, although the
unique key still prevents a second payment.
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import and_, exists, insert, or_, select, update
from sqlalchemy import exc as sa_exc

from .core import errors as E
from .core.addresses import normalize_address
from .core.amounts import check_amount
from .core.hashing import ZERO32
from .core.typed_data import Transfer
from .service import Ledger, Posted, Submission, check_memo
from .store import tables as T
from .store.request_tables import payment_requests as R

MIN_EXPIRY_S = 60
MAX_EXPIRY_S = 90 * 24 * 3600
MAX_PAGE = 500
STATUSES = ("open", "paid", "declined", "expired")
DIRECTIONS = ("incoming", "outgoing")

_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}", re.ASCII)
_CURSOR = re.compile(r"([0-9]{1,19}):([0-9a-f]{64})", re.ASCII)


class UnknownRequest(E.LedgerError):
    code = "unknown_request"


class RequestNotOpen(E.LedgerError):
    """Declined, or already paid (by another transfer)."""
    code = "request_not_open"


class RequestExpired(E.LedgerError):
    code = "request_expired"


class RequestMismatch(E.LedgerError):
    """The signed transfer does not pay exactly this request."""
    code = "request_mismatch"


@dataclass(frozen=True)
class PaymentRequest:
    id: str  # 0x + 64 hex
    payee: str
    payer: str
    currency: str
    amount: int
    memo: str | None
    created_at: int  # unix ms
    expires_at: int  # unix ms
    status: str  # open | paid | declined | expired
    paid_seq: int | None


def _check_memo(memo: object) -> str | None:
    if memo is None or memo == "":
        return None
    check_memo(memo)  # the same rule as a transfer's memo
    return memo


def parse_request_id(request_id: object) -> bytes:
    if isinstance(request_id, bytes) and len(request_id) == 32:
        return request_id
    if isinstance(request_id, str) and _HEX32.fullmatch(request_id):
        return bytes.fromhex(request_id[2:])
    raise E.InvalidInput("a request id is 32 bytes as 0x-prefixed hex")


def clamp_limit(limit: object, default: int = 50) -> int:
    if limit is None:
        return default
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise E.InvalidInput("limit must be an integer")
    return max(1, min(MAX_PAGE, limit))


def _encode_cursor(created_at: int, rid: bytes) -> str:
    return base64.urlsafe_b64encode(f"{created_at}:{rid.hex()}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, bytes]:
    try:
        if not isinstance(cursor, str) or len(cursor) > 200:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        m = _CURSOR.fullmatch(raw)
        if not m:
            raise ValueError
        return int(m.group(1)), bytes.fromhex(m.group(2))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise E.InvalidInput("cursor is malformed: pass back the nextCursor of the previous page") from None


# The one transfer that pays a request: same id, payer, payee, currency and amount. The
# unique index uq_transfers_request_key guarantees there is at most one, and serves the join.
_PAYS = and_(T.transfers.c.request_id == R.c.id, T.transfers.c.payer == R.c.payer,
             T.transfers.c.payee == R.c.payee, T.transfers.c.currency == R.c.currency,
             T.transfers.c.amount == R.c.amount)
_SELECT = select(R, T.transfers.c.seq.label("pay_seq")).select_from(R.outerjoin(T.transfers, _PAYS))


class PaymentRequests:
    def __init__(self, ledger: Ledger, *, submit: Callable[[Submission], Posted] | None = None):
        """`submit` posts a signed transfer (default `ledger.submit`; the API may pass a
        GroupCommitter's `submit`). It must raise LedgerError like Ledger.submit does."""
        self.ledger = ledger
        self._submit = submit or ledger.submit

    # -- reading -------------------------------------------------------------------------
    def _view(self, row, now: int) -> PaymentRequest:
        if row.pay_seq is not None:
            status, paid_seq = "paid", row.pay_seq
        elif row.status == "declined":
            status, paid_seq = "declined", None
        elif now > row.expires_at:
            status, paid_seq = "expired", None
        else:
            status, paid_seq = "open", None
        return PaymentRequest("0x" + bytes(row.id).hex(), row.payee, row.payer, row.currency, row.amount,
                              row.memo, row.created_at, row.expires_at, status, paid_seq)

    def _load(self, rid: bytes):
        with self.ledger._reader() as conn:
            return conn.execute(_SELECT.where(R.c.id == rid)).first()

    def get(self, request_id: str) -> PaymentRequest:
        rid = parse_request_id(request_id)
        row = self._load(rid)
        if row is None:
            raise UnknownRequest(f"there is no payment request {request_id}")
        return self._view(row, self.ledger.clock())

    def list_for(self, address: str, *, direction: str, status: str | None = None, limit: int = 50,
                 cursor: str | None = None) -> tuple[list[PaymentRequest], str | None]:
        """Requests the address must pay (`incoming`) or has asked for (`outgoing`), newest
        first. Keyset pagination on (created_at, id): a page never repeats or skips a request
        that existed when the first page was read; requests created later appear on page one."""
        address = normalize_address(address, what="address")
        if direction not in DIRECTIONS:
            raise E.InvalidInput("direction must be 'incoming' or 'outgoing'")
        if status is not None and status not in STATUSES:
            raise E.InvalidInput(f"status must be one of {', '.join(STATUSES)}")
        limit = clamp_limit(limit)
        now = self.ledger.clock()
        q = _SELECT.where((R.c.payer if direction == "incoming" else R.c.payee) == address)
        unpaid = T.transfers.c.seq.is_(None)
        if status == "paid":
            q = q.where(T.transfers.c.seq.isnot(None))
        elif status == "declined":
            q = q.where(unpaid, R.c.status == "declined")
        elif status == "expired":
            q = q.where(unpaid, R.c.status != "declined", R.c.expires_at < now)
        elif status == "open":
            q = q.where(unpaid, R.c.status != "declined", R.c.expires_at >= now)
        if cursor is not None:
            c_at, c_id = _decode_cursor(cursor)
            q = q.where(or_(R.c.created_at < c_at, and_(R.c.created_at == c_at, R.c.id < c_id)))
        q = q.order_by(R.c.created_at.desc(), R.c.id.desc()).limit(limit + 1)
        with self.ledger._reader() as conn:
            rows = conn.execute(q).all()
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = _encode_cursor(rows[-1].created_at, bytes(rows[-1].id)) if more else None
        return [self._view(r, now) for r in rows], nxt

    # -- writing -------------------------------------------------------------------------
    def create(self, *, payee: str, payer: str, currency: str, amount: int, memo: str | None,
               expires_in_s: int) -> PaymentRequest:
        payee = normalize_address(payee, what="payee")
        payer = normalize_address(payer, what="payer")
        if not isinstance(currency, str) or currency not in self.ledger.currencies:
            raise E.UnknownCurrency(f"currency {currency!r} is not used in this community")
        amount = check_amount(amount)
        if payer == payee:
            raise E.SamePayerPayee("a payee cannot request a payment from itself")
        if isinstance(expires_in_s, bool) or not isinstance(expires_in_s, int) \
                or not MIN_EXPIRY_S <= expires_in_s <= MAX_EXPIRY_S:
            raise E.InvalidInput(f"expires_in_s must be an integer between {MIN_EXPIRY_S} and {MAX_EXPIRY_S}"
                                 " seconds (90 days)")
        memo = _check_memo(memo)
        rid = secrets.token_bytes(32)
        with self.ledger.engine.begin() as conn:
            found = {r.address: r.status for r in conn.execute(
                select(T.accounts.c.address, T.accounts.c.status).where(T.accounts.c.address.in_([payer, payee])))}
            for who, addr in (("payee", payee), ("payer", payer)):
                if addr not in found:
                    raise E.UnknownAccount(f"{who} {addr} has no account here")
                if found[addr] != "active":
                    raise E.AccountNotActive(f"{who} account {addr} is {found[addr]}")
            now = self.ledger.clock()
            conn.execute(insert(R).values(id=rid, payee=payee, payer=payer, currency=currency, amount=amount,
                                          memo=memo, created_at=now, expires_at=now + expires_in_s * 1000,
                                          status="open", paid_seq=None, declined_at=None))
        return PaymentRequest("0x" + rid.hex(), payee, payer, currency, amount, memo, now,
                              now + expires_in_s * 1000, "open", None)

    def decline(self, request_id: str, *, by: str) -> PaymentRequest:
        """Only the payer, only while open and unexpired."""
        rid = parse_request_id(request_id)
        by = normalize_address(by, what="by")
        with self.ledger.engine.begin() as conn:
            row = conn.execute(_SELECT.where(R.c.id == rid)).first()
            if row is None:
                raise UnknownRequest(f"there is no payment request {request_id}")
            now = self.ledger.clock()
            current = self._view(row, now)
            if by != current.payer:
                raise E.NotAuthorised("only the payer may decline a payment request")
            self._refuse_unless_open(current)
            paid = exists().where(_PAYS)
            done = conn.execute(update(R).where(R.c.id == rid, R.c.status == "open", R.c.expires_at >= now, ~paid)
                                .values(status="declined", declined_at=now)).rowcount
            if done != 1:  # paid or declined between our read and our write (PostgreSQL)
                raise RequestNotOpen("the payment request changed meanwhile; read it again")
        return PaymentRequest(current.id, current.payee, current.payer, current.currency, current.amount,
                              current.memo, current.created_at, current.expires_at, "declined", None)

    def pay(self, request_id: str, submission: Submission) -> Posted:
        """Post the payer's signed Transfer that names this request; see the module docstring."""
        rid = parse_request_id(request_id)
        action = submission.action
        if not isinstance(action, Transfer):
            raise E.InvalidInput("a payment request is paid with a signed Transfer")
        if action.request_id == ZERO32 or action.request_id != rid:
            raise RequestMismatch(f"the transfer's requestId does not name request {request_id}")
        row = self._load(rid)
        if row is None:
            raise UnknownRequest(f"there is no payment request {request_id}")
        req = self._view(row, self.ledger.clock())
        if action.payer != req.payer:
            raise E.NotAuthorised("only the payer named in the request may pay it")
        wrong = [f"{name} {got!r} (requested {want!r})" for name, got, want in (
            ("payee", action.payee, req.payee), ("currency", action.currency, req.currency),
            ("amount", action.amount, req.amount)) if got != want]
        if wrong:
            raise RequestMismatch("the transfer does not match the request: " + ", ".join(wrong))
        prepared = self.ledger.prepare(submission)  # signature checks; raises before any write
        if req.status == "paid":
            original = self._original(prepared, req.paid_seq)
            if original is not None:
                return original
        self._refuse_unless_open(req)
        try:
            posted = self._submit(submission)
        except E.LedgerError as exc:
            if exc.code == "request_already_paid":  # after the recommended service.py change
                raise RequestNotOpen(f"payment request {request_id} is already paid") from None
            raise
        except (sa_exc.IntegrityError, self.ledger.engine.dialect.loaded_dbapi.IntegrityError):
            # uq_transfers_request_key: another transfer paid this request concurrently and
            # this posting was rolled back whole. Anything else is re-raised unchanged.
            again = self._load(rid)
            if again is not None and again.pay_seq is not None:
                original = self._original(prepared, again.pay_seq)
                if original is not None:
                    return original
                raise RequestNotOpen(f"payment request {request_id} was just paid by entry {again.pay_seq}") from None
            raise
        if not posted.duplicate or req.status != "paid":
            with self.ledger.engine.begin() as conn:  # the cache; reads derive it anyway
                conn.execute(update(R).where(R.c.id == rid).values(status="paid", paid_seq=posted.seq))
        return posted

    def erase_memo(self, request_id: str) -> None:
        """Erase the request's memo (personal data). Nothing else changes."""
        rid = parse_request_id(request_id)
        with self.ledger.engine.begin() as conn:
            if conn.execute(update(R).where(R.c.id == rid).values(memo=None)).rowcount != 1:
                raise UnknownRequest(f"there is no payment request {request_id}")

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _refuse_unless_open(req: PaymentRequest) -> None:
        if req.status == "paid":
            raise RequestNotOpen(f"payment request {req.id} is already paid (entry {req.paid_seq})")
        if req.status == "declined":
            raise RequestNotOpen(f"payment request {req.id} was declined")
        if req.status == "expired":
            raise RequestExpired(f"payment request {req.id} expired at {req.expires_at} (unix ms)")

    def _original(self, prepared, paid_seq: int) -> Posted | None:
        """The original result when `prepared` is the very message that paid the request."""
        a = prepared.submission.action
        with self.ledger._reader() as conn:
            row = conn.execute(select(T.signed_actions.c.digest, T.signed_actions.c.seq).where(
                T.signed_actions.c.signer == prepared.signer, T.signed_actions.c.nonce == str(a.nonce))).first()
        if row is not None and bytes(row.digest) == prepared.digest and row.seq == paid_seq:
            return Posted(paid_seq, "transfer.posted", "0x" + prepared.digest.hex(), True)
        return None


__all__ = ["PaymentRequest", "PaymentRequests", "UnknownRequest", "RequestNotOpen", "RequestExpired",
           "RequestMismatch", "parse_request_id", "MIN_EXPIRY_S", "MAX_EXPIRY_S"]
