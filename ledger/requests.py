"""Payment requests: a payee (a shop, a carer) asks a payer for an amount; the payer pays by
signing an ordinary Transfer whose `requestId` names the request, or declines.

Where the truth lives, and why a request is paid at most once and never both declined and paid
----------------------------------------------------------------------------------------------
1. **The log is the source of truth for "paid".** A request is paid iff the `transfers`
   projection holds a transfer with `request_id` = the request's id *and* exactly its payer,
   payee, currency and amount. Every read derives the status from that join; `status` and
   `paid_seq` in the row are a cache, written in the transaction that posts the payment.
2. **One lock decides.** Every posting (`Ledger.submit`, group commit, this module's `pay`)
   checks each transfer that names an existing request *under the log-head lock, in the
   transaction that posts it* (ledger.request_rules.check_transfer_naming): the request must
   be open (not paid, not declined) and unexpired at the entry's own time. `decline` takes the
   same head lock before it reads and writes the request. So a payment and a decline racing
   each other are decided one after the other: exactly one wins, the other is refused with
   `request_not_open` (HTTP 409), whichever path posted the transfer.
3. **A second payment is impossible.** Under the same lock the service refuses a second
   transfer with the request's key (`request_already_paid`); migration 0003's partial unique
   index `uq_transfers_request_key` stays as the database's own guarantee. The index covers
   the whole key, not just request_id, so somebody who learns a request id cannot block it by
   posting an unrelated transfer that merely names it (such a transfer is not a payment of it,
   and once the request is closed it is refused like any other).
4. **Retries are idempotent.** Re-sending the same signed transfer returns the original
   `Posted` (duplicate=True, same seq): the ledger's nonce check runs before the request check.
5. `declined` is the payer's explicit refusal; `expired` is never stored, it is computed
   (open and now > expires_at).
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, replace
from typing import Callable

from sqlalchemy import and_, or_

from .core import errors as E
from .core.addresses import normalize_address
from .core.amounts import check_amount
from .core.errors import RequestExpired, RequestMismatch, RequestNotOpen, UnknownRequest
from .core.hashing import ZERO32
from .core.refunds import RefundTransfer
from .core.text import check_memo
from .core.typed_data import Transfer
from .request_rules import RequestRecord, check_declinable, check_request_parties
from .service import Ledger, Posted, Submission
from .store import tables as T
from .store.errors import domain_errors
from .store.request_tables import payment_requests as R
from .store.shop_refunds import refund_intent
from .store.unit_of_work import REQUESTS_WITH_PAYMENT, request_record

MIN_EXPIRY_S = 60
MAX_EXPIRY_S = 90 * 24 * 3600
MAX_PAGE = 500
STATUSES = ("open", "paid", "declined", "expired")
DIRECTIONS = ("incoming", "outgoing")

_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}", re.ASCII)
_CURSOR = re.compile(r"([0-9]{1,19}):([0-9a-f]{64})", re.ASCII)


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
    paid_by: str | None = None  # who paid (for an open request, whoever paid it first)

    @property
    def open_to_all(self) -> bool:
        return self.payer is None


def _check_memo(memo: object) -> str | None:
    if memo is None or memo == "":
        return None
    return check_memo(memo)  # the same rule as a transfer's memo (ledger.core.text)


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


class PaymentRequests:
    def __init__(self, ledger: Ledger, *, submit: Callable[[Submission], Posted] | None = None):
        """`submit` posts a signed transfer (default `ledger.submit`; the API may pass a
        GroupCommitter's `submit`). It must raise LedgerError like Ledger.submit does."""
        self.ledger = ledger
        self._submit = submit or ledger.submit

    # -- reading -------------------------------------------------------------------------
    @staticmethod
    def _view(record: RequestRecord, now: int) -> PaymentRequest:
        return PaymentRequest(record.hex_id, record.payee, record.payer, record.currency, record.amount,
                              record.memo, record.created_at, record.expires_at, record.status(now),
                              record.paid_seq, record.paid_by)

    def _record(self, rid: bytes, request_id: str) -> RequestRecord:
        with self.ledger.unit_of_work(readonly=True) as uow:
            record = uow.requests([rid]).get(rid)
        if record is None:
            raise UnknownRequest(f"there is no payment request {request_id}")
        return record

    def get(self, request_id: str) -> PaymentRequest:
        record = self._record(parse_request_id(request_id), request_id)
        return self._view(record, self.ledger.clock())

    def read(self, request_id: str, *, by: str) -> PaymentRequest:
        """A request as `by` may read it: only its payer and its payee may (anyone else learns
        nothing, not even whether it exists beyond the id they already hold)."""
        request = self.get(request_id)
        if by not in (request.payer, request.payee):
            raise E.LedgerError("only the payer and the payee may read a payment request", code="forbidden")
        return request

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
        q = REQUESTS_WITH_PAYMENT.where((R.c.payer if direction == "incoming" else R.c.payee) == address)
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
        with domain_errors(), self.ledger._reader() as conn:
            rows = conn.execute(q).all()
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = _encode_cursor(rows[-1].created_at, bytes(rows[-1].id)) if more else None
        return [self._view(request_record(r), now) for r in rows], nxt

    # -- writing -------------------------------------------------------------------------
    def create(self, *, payee: str, payer: str | None, currency: str, amount: int, memo: str | None,
               expires_in_s: int, link: Callable[[object, bytes], None] | None = None) -> PaymentRequest:
        """`link(connection, request_id)`, if given, runs in the transaction that stores the
        request (the exchange board ties an arrangement to it there: both or neither); what it
        raises refuses the request. The request and its payment are unchanged by it.
        `payer` None makes an open request (a shop's till, docs/shops.md): any active member may
        pay it, once; the first payment posted wins under the posting lock."""
        payee = normalize_address(payee, what="payee")
        payer = None if payer is None else normalize_address(payer, what="payer")
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
        with self.ledger.unit_of_work() as uow:
            check_request_parties(uow.accounts([a for a in (payer, payee) if a is not None]), payer=payer, payee=payee)
            now = self.ledger.clock()
            record = RequestRecord(rid, payee, payer, currency, amount, memo, now, now + expires_in_s * 1000,
                                   declined=False, paid_seq=None)
            uow.add_request(record)
            if link is not None:
                link(uow.conn, rid)
        return self._view(record, now)

    def decline(self, request_id: str, *, by: str) -> PaymentRequest:
        """Only the payer, only while open and unexpired. Decided under the log-head lock, the
        one every payment takes: a decline and a payment of one request never both succeed."""
        rid = parse_request_id(request_id)
        by = normalize_address(by, what="by")
        with self.ledger.unit_of_work() as uow:
            uow.lock_head()
            record = uow.requests([rid]).get(rid)
            if record is None:
                raise UnknownRequest(f"there is no payment request {request_id}")
            now = self.ledger.clock()
            check_declinable(record, by, now)
            uow.decline_request(rid, now)
        return self._view(replace(record, declined=True), now)

    def pay(self, request_id: str, submission: Submission) -> Posted:
        """Post the payer's signed Transfer that names this request. What never changes (payer,
        payee, currency, amount) is checked here for a precise error; whether the request is
        still open is decided by the ledger under the head lock (see the module docstring)."""
        rid = parse_request_id(request_id)
        action = submission.action
        if not isinstance(action, Transfer):
            raise E.InvalidInput("a payment request is paid with a signed Transfer")
        if action.request_id == ZERO32 or action.request_id != rid:
            raise RequestMismatch(f"the transfer's requestId does not name request {request_id}")
        with self.ledger.unit_of_work(readonly=True) as uow:
            req = uow.requests([rid]).get(rid)
            intent = None if req is not None else refund_intent(uow.conn, rid)
        if intent is not None:  # the id of a refund the payee prepared (docs/shops.md, "Refunds")
            return self._refund(intent, submission)
        if req is None:
            raise UnknownRequest(f"there is no payment request {request_id}")
        if req.payer is not None and action.payer != req.payer:
            raise E.NotAuthorised("only the payer named in the request may pay it")
        wrong = [f"{name} {got!r} (requested {want!r})" for name, got, want in (
            ("payee", action.payee, req.payee), ("currency", action.currency, req.currency),
            ("amount", action.amount, req.amount)) if got != want]
        if wrong:
            raise RequestMismatch("the transfer does not match the request: " + ", ".join(wrong))
        self.ledger.prepare(submission)  # signature checks first: a forgery learns nothing of the status
        try:
            return self._submit(submission)
        except E.RequestAlreadyPaid as exc:  # a different signed payment won: for the payer, not open
            raise RequestNotOpen(f"payment request {request_id} is already paid: {exc.message}") from None

    def _refund(self, intent, submission: Submission) -> Posted:
        """Post a refund: the shop's signed Transfer naming the refund id, with the link to the
        original beside it in the entry (ledger.core.refunds). The fold decides, under the head
        lock, whether it still fits in what remains refundable."""
        action = submission.action
        if action.payer != intent.shop:
            raise E.NotAuthorised("only the shop that prepared this refund may sign it")
        if action.amount != intent.amount:
            raise RequestMismatch(f"the refund was prepared for {intent.amount}, not {action.amount}")
        refund = RefundTransfer.of(action, intent.original_seq, int(intent.refund_nonce))
        sub = Submission(refund, submission.signature, submission.memo, submission.memo_salt)
        self.ledger.prepare(sub)
        return self._submit(sub)

    def erase_memo(self, request_id: str) -> None:
        """Erase the request's memo (personal data). Nothing else changes."""
        rid = parse_request_id(request_id)
        with self.ledger.transaction() as conn:
            if conn.execute(R.update().where(R.c.id == rid).values(memo=None)).rowcount != 1:
                raise UnknownRequest(f"there is no payment request {request_id}")


__all__ = ["PaymentRequest", "PaymentRequests", "UnknownRequest", "RequestNotOpen", "RequestExpired",
           "RequestMismatch", "parse_request_id", "MIN_EXPIRY_S", "MAX_EXPIRY_S"]
