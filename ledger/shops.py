"""Shops (docs/shops.md): a till that takes community credit, built on the signed-transfer and
request model, nothing custodial.

- **Profile**: public data a shop chooses to publish (name, postal address, opening hours, the
  share of a price it takes in credit). Unpublished, nobody else sees it; erasing it deletes it.
- **Till requests**: a payment request with a till label and, for a mixed payment, a structured
  reference {totalMinor, creditShareBp, creditMinor} (never a memo): only the credit part is a
  ledger transfer; the rest (cash, euros) is not the ledger's business. An *open* request names
  no payer: any active member pays it once (ledger.requests).
- **Checkout**: a customer scans the shop's standing code, types the amount, and creates a
  request to that shop for themselves; then pays it like any request.
- **Name consent**: a customer may let the shop see their display name for one payment; each
  time the shop's feed shows it, the read is written to the customer's access log.
- **Refunds**: the shop prepares a refund id bound to the original payment
  (ledger.core.refunds.refund_id), signs a Transfer naming it; the fold caps refunds at the
  original amount, under the posting lock and in every replay.
- **Takings**: the feed (cursor = seq: entries commit in seq order under the head lock, so a
  reader that asks for "after N" never skips one, and never repeats one) and the report per
  day/week/month, till label and currency, read from the log's projections only.
"""
from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, delete, insert, or_, select, update

from .core import errors as E
from .core.addresses import normalize_address
from .core.amounts import check_amount
from .core.refunds import refund_id
from .core.text import check_user_text
from .core.vocab import Role, Status
from .privacy.access import Reader
from .requests import PaymentRequest, PaymentRequests, parse_request_id
from .store import tables as T
from .store.errors import domain_errors
from .store.federation_tables import remote_legs as RLEG
from .store.shop_tables import refund_intents as RI
from .store.shop_tables import refund_links as RL
from .store.shop_tables import shop_name_consents as NC
from .store.shop_tables import shop_profiles as SP
from .store.shop_tables import shop_requests as SR
from .store.stored import entry_body

PROFILE_LIMITS = {"name": 120, "postalAddress": 240, "openingHours": 240}
TILL_MAX = 32
BP_ONE = 10_000  # basis points in 100 %
CHECKOUT_EXPIRY_S = 15 * 60  # a checkout is paid at the counter, now
FEED_MAX = 200
REPORT_MAX_DAYS = 400
PERIODS = ("day", "week", "month")
SEQ_MAX = 2 ** 63 - 1  # entries.seq is a BIGINT: a larger cursor or seq is the client's mistake (400)
NAME_PURPOSE = "shop_customer_name"  # ledger/privacy/policy.json
ROLES_WITH_SHOP = (Role.SHOP.value,)


@dataclass(frozen=True)
class ShopProfile:
    address: str
    name: str
    postal_address: str | None
    opening_hours: str | None
    credit_share_bp: int | None
    published: bool
    updated_at: int

    def public(self) -> dict:
        out = {"address": self.address, "name": self.name, "published": self.published}
        if self.postal_address:
            out["postalAddress"] = self.postal_address
        if self.opening_hours:
            out["openingHours"] = self.opening_hours
        if self.credit_share_bp is not None:
            out["creditShareBp"] = self.credit_share_bp
        return out


@dataclass(frozen=True)
class TillInfo:
    """What a till added to a payment request (ledger.store.shop_tables.shop_requests)."""

    till: str | None
    total_minor: int | None
    credit_share_bp: int | None
    credit_minor: int | None
    checkout: bool

    def mixed(self) -> dict | None:
        if self.total_minor is None:
            return None
        return {"totalMinor": self.total_minor, "creditShareBp": self.credit_share_bp,
                "creditMinor": self.credit_minor}


@dataclass(frozen=True)
class _RemoteRow:
    """A committed payment from an allied community, shaped like a takings row of `transfers`."""

    seq: int
    at: int
    payer: str
    payee: str
    currency: str
    amount: int
    payment_id: bytes
    request_id: None = None
    original_seq: None = None
    orig_request_id: None = None
    body: None = None


# -- pure rules ---------------------------------------------------------------------------------
def check_till(value: object) -> str | None:
    """A till label is shown on the till and in reports: the one text rule, at most 32 characters."""
    if value is None or value == "":
        return None
    return check_user_text(value, field="till", max_chars=TILL_MAX)


def check_bp(value: object, what: str = "creditShareBp") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BP_ONE:
        raise E.InvalidInput(f"{what} must be an integer from 0 to {BP_ONE} (basis points: 3000 = 30 %)")
    return value


def credit_part(total_minor: int, credit_share_bp: int) -> int:
    """The credit part of a mixed payment: floor(total * share / 10000), in minor units. Floor,
    so the credit part never exceeds the share the shop stated; the remainder is paid in cash."""
    return total_minor * credit_share_bp // BP_ONE


def mixed_reference(total_minor: object, credit_share_bp: object, amount: object | None) -> tuple[int, int, int]:
    """(total, share, credit part), refusing a credit part that is 0 or differs from `amount`."""
    total = check_amount(total_minor, what="totalMinor")
    share = check_bp(credit_share_bp)
    credit = credit_part(total, share)
    if credit <= 0:
        raise E.InvalidInput(f"{share / 100:g} % of {total} is less than one minor unit: take it all in cash")
    if amount is not None and amount != credit:
        raise E.InvalidInput(f"amount {amount} is not the credit part {credit} = floor({total} * {share} / {BP_ONE})")
    return total, share, credit


def period_of(at_ms: int, period: str) -> str:
    d = datetime.fromtimestamp(at_ms / 1000, tz=UTC).date()
    if period == "day":
        return d.isoformat()
    if period == "week":
        y, w, _ = d.isocalendar()
        return f"{y}-W{w:02d}"
    return f"{d.year:04d}-{d.month:02d}"


def parse_day(value: object, what: str) -> date:
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise E.InvalidInput(f"{what} must be a UTC day as YYYY-MM-DD") from None


def parse_cursor(after: object) -> int:
    if after is None or after == "":
        return 0
    if isinstance(after, int) and not isinstance(after, bool) and 0 <= after <= SEQ_MAX:
        return after
    if isinstance(after, str) and after.isascii() and after.isdigit() and len(after) <= 19 and int(after) <= SEQ_MAX:
        return int(after)
    raise E.InvalidInput("after must be the cursor of a previous page (a seq, decimal)")


class Shops:
    def __init__(self, ledger, requests: PaymentRequests, access=None):
        self.ledger = ledger
        self.requests = requests
        self.access = access  # ledger.privacy.access.Access: logs the shop's reads of customer names

    # -- profile --------------------------------------------------------------------------------
    def _shop_account(self, conn, address: str) -> None:
        row = conn.execute(select(T.accounts.c.role, T.accounts.c.status).where(T.accounts.c.address == address)).first()
        if row is None:
            raise E.UnknownAccount(f"{address} has no account here")
        if row.role not in ROLES_WITH_SHOP:
            raise E.NotAuthorised("only a shop account has a shop profile (a treasurer opens one with role shop)")

    def set_profile(self, address: str, *, name: object, postal_address: object = None, opening_hours: object = None,
                    credit_share_bp: object = None, published: object = True) -> ShopProfile:
        """Create or replace the shop's profile. Each field obeys the one text rule: it is shown to
        every customer beside an amount."""
        address = normalize_address(address, what="shop")
        name = check_user_text(name, field="name", max_chars=PROFILE_LIMITS["name"])
        from .core.text import has_visible
        if not has_visible(name):
            raise E.InvalidInput("name must show at least one character")
        postal = None if postal_address in (None, "") else check_user_text(
            postal_address, field="postalAddress", max_chars=PROFILE_LIMITS["postalAddress"], allow_newlines=True)
        hours = None if opening_hours in (None, "") else check_user_text(
            opening_hours, field="openingHours", max_chars=PROFILE_LIMITS["openingHours"], allow_newlines=True)
        bp = None if credit_share_bp is None else check_bp(credit_share_bp)
        if not isinstance(published, bool):
            raise E.InvalidInput("published must be true or false")
        now = self.ledger.clock()
        values = {"name": name, "postal_address": postal, "opening_hours": hours, "credit_share_bp": bp,
                  "published": published, "updated_at": now}
        with self.ledger.transaction() as conn:
            self._shop_account(conn, address)
            if conn.execute(update(SP).where(SP.c.address == address).values(**values)).rowcount == 0:
                conn.execute(insert(SP).values(address=address, **values))
        return ShopProfile(address, name, postal, hours, bp, published, now)

    def profile(self, address: str) -> ShopProfile | None:
        address = normalize_address(address, what="shop")
        with domain_errors(), self.ledger._reader() as conn:
            r = conn.execute(select(SP).where(SP.c.address == address)).first()
        return None if r is None else ShopProfile(r.address, r.name, r.postal_address, r.opening_hours,
                                                  r.credit_share_bp, bool(r.published), r.updated_at)

    def public_profile(self, address: str) -> ShopProfile:
        """The published profile of an active shop; not_found otherwise (an unpublished profile
        and no profile look the same to others)."""
        p = self.profile(address)
        acct = self.ledger.account(p.address) if p else None
        if p is None or not p.published or acct is None or acct.status != Status.ACTIVE:
            raise E.LedgerError(f"no published shop profile for {normalize_address(address, what='shop')}",
                                code="not_found")
        return p

    def unpublish(self, address: str) -> ShopProfile:
        address = normalize_address(address, what="shop")
        with self.ledger.transaction() as conn:
            if conn.execute(update(SP).where(SP.c.address == address).values(published=False)).rowcount == 0:
                raise E.LedgerError("this shop has no profile", code="not_found")
        return self.profile(address)

    def erase_profile(self, address: str) -> int:
        """The shop's erasure request: the profile row goes (till data on requests stays: it names
        no person, and paid requests are named by signed transfers)."""
        address = normalize_address(address, what="shop")
        with self.ledger.transaction() as conn:
            return conn.execute(delete(SP).where(SP.c.address == address)).rowcount

    def published(self, addresses: Iterable[str]) -> dict[str, ShopProfile]:
        """Published profiles of these addresses (the exchange board shows them beside listings)."""
        addrs = sorted(set(addresses))
        if not addrs:
            return {}
        with domain_errors(), self.ledger._reader() as conn:
            rows = conn.execute(select(SP).where(SP.c.address.in_(addrs), SP.c.published.is_(True))).all()
        return {r.address: ShopProfile(r.address, r.name, r.postal_address, r.opening_hours, r.credit_share_bp,
                                       True, r.updated_at) for r in rows}

    # -- till requests and checkouts ------------------------------------------------------------
    def _mixed(self, shop: str, total_minor, credit_share_bp, amount) -> tuple | None:
        if total_minor is None:
            if credit_share_bp is not None:
                raise E.InvalidInput("creditShareBp needs totalMinor (the whole price)")
            return None
        if credit_share_bp is None:
            p = self.profile(shop)
            if p is None or p.credit_share_bp is None:
                raise E.InvalidInput("give creditShareBp, or set it on the shop profile")
            credit_share_bp = p.credit_share_bp
        return mixed_reference(total_minor, credit_share_bp, amount)

    def create_request(self, shop: str, *, payer: str | None, currency: str, amount: object | None, memo: str | None,
                       expires_in_s: int, till: object = None, total_minor: object = None,
                       credit_share_bp: object = None, checkout: bool = False) -> tuple[PaymentRequest, TillInfo | None]:
        """A payment request with what the till adds. Plain requests (no till, no mixed
        reference) store nothing extra."""
        till = check_till(till)
        mixed = self._mixed(shop, total_minor, credit_share_bp, None if amount is None else check_amount(amount))
        if amount is None:
            if mixed is None:
                raise E.InvalidInput("amount is required (or totalMinor for a mixed payment)")
            amount = mixed[2]
        info = None
        if till is not None or mixed is not None or checkout:
            info = TillInfo(till, *(mixed or (None, None, None)), checkout)

        def link(conn, rid: bytes) -> None:
            if info is not None:
                conn.execute(insert(SR).values(request_id=rid, shop=normalize_address(shop, what="payee"),
                                               till=info.till, total_minor=info.total_minor,
                                               credit_share_bp=info.credit_share_bp, credit_minor=info.credit_minor,
                                               checkout=info.checkout))
        r = self.requests.create(payee=shop, payer=payer, currency=currency, amount=amount, memo=memo,
                                 expires_in_s=expires_in_s, link=link)
        return r, info

    def checkout(self, shop: str, customer: str, *, currency: str, amount: object | None, till: object = None,
                 share_name: object = False, total_minor: object = None,
                 credit_share_bp: object = None) -> tuple[PaymentRequest, TillInfo | None, bool]:
        """The customer's own request to a shop, from the shop's standing code. Only to a shop with
        a published profile: the customer must see whom they pay, as the shop declared itself."""
        if not isinstance(share_name, bool):
            raise E.InvalidInput("shareName must be true or false")
        shop = normalize_address(shop, what="shop")
        profile = self.public_profile(shop)
        # the customer writes this request, but the shop's till and takings show it as the shop's:
        # the share is the one the shop declared, never one the customer picks
        if total_minor is not None or credit_share_bp is not None:
            if profile.credit_share_bp is None:
                raise E.RequestMismatch("this shop has declared no share in credit: pay the amount in credit, "
                                        "without totalMinor")
            if credit_share_bp is not None and credit_share_bp != profile.credit_share_bp:
                raise E.RequestMismatch(f"this shop takes {profile.credit_share_bp} basis points of a price in credit "
                                        f"(its profile's creditShareBp), not {credit_share_bp!r}")
            credit_share_bp = profile.credit_share_bp
        till = check_till(till)
        if till is not None and not self._uses_till(shop, till):
            # a free label from a customer would be filed in the shop's report as one of its tills
            raise E.RequestMismatch(f"till {till!r} is not a till label this shop uses: scan the shop's code again")
        r, info = self.create_request(shop, payer=customer, currency=currency, amount=amount, memo=None,
                                      expires_in_s=CHECKOUT_EXPIRY_S, till=till, total_minor=total_minor,
                                      credit_share_bp=credit_share_bp, checkout=True)
        if share_name:
            self.share_name(r.id, customer)
        return r, info, share_name

    def _uses_till(self, shop: str, till: str) -> bool:
        """Whether the shop itself has used this till label (on a request its till made)."""
        with domain_errors(), self.ledger._reader() as conn:
            return conn.execute(select(SR.c.request_id).where(SR.c.shop == shop, SR.c.till == till,
                                                              SR.c.checkout.is_(False)).limit(1)).first() is not None

    def till_info(self, request_ids: Iterable[bytes]) -> dict[bytes, TillInfo]:
        ids = sorted(set(request_ids))
        if not ids:
            return {}
        with domain_errors(), self.ledger._reader() as conn:
            rows = conn.execute(select(SR).where(SR.c.request_id.in_(ids))).all()
        return {bytes(r.request_id): TillInfo(r.till, r.total_minor, r.credit_share_bp, r.credit_minor,
                                              bool(r.checkout)) for r in rows}

    def share_name(self, request_id: str, member: str) -> None:
        """The member consents that the shop sees their display name for this payment only. Only
        the request's payer (or, for an open request, whoever is about to pay it), while open."""
        rid = parse_request_id(request_id)
        member = normalize_address(member, what="member")
        r = self.requests.get(request_id)
        if r.payer is not None and r.payer != member:
            raise E.LedgerError("only the payer of this request may share their name with the shop", code="forbidden")
        if r.status != "open":
            raise E.RequestNotOpen(f"payment request {r.id} is {r.status}: consent is given before paying")
        with self.ledger.transaction() as conn:
            if conn.execute(select(NC.c.at).where(NC.c.request_id == rid, NC.c.member == member)).first() is None:
                conn.execute(insert(NC).values(request_id=rid, member=member, at=self.ledger.clock()))

    def consented(self, request_id: bytes, member: str) -> bool:
        with domain_errors(), self.ledger._reader() as conn:
            return conn.execute(select(NC.c.at).where(NC.c.request_id == request_id, NC.c.member == member)).first() \
                is not None

    # -- refunds --------------------------------------------------------------------------------
    def _original(self, conn, seq: int):
        row = conn.execute(select(T.transfers, T.entries.c.body).select_from(
            T.transfers.join(T.entries, T.entries.c.seq == T.transfers.c.seq)).where(T.transfers.c.seq == seq)).first()
        return row

    def refund_state(self, seq: int) -> dict:
        """{refunds: [{seq, amount}], refunded, refundableRemaining, refundOf} of transfer `seq`."""
        with domain_errors(), self.ledger._reader() as conn:
            links = conn.execute(select(RL.c.seq, T.transfers.c.amount, RL.c.original_seq).select_from(
                RL.join(T.transfers, T.transfers.c.seq == RL.c.seq)).where(  # amounts: the transfer's own
                or_(RL.c.original_seq == seq, RL.c.seq == seq)).order_by(RL.c.seq)).all()
            amount = conn.execute(select(T.transfers.c.amount).where(T.transfers.c.seq == seq)).scalar()
        refunds = [{"seq": x.seq, "amount": x.amount} for x in links if x.original_seq == seq]
        refund_of = next((x.original_seq for x in links if x.seq == seq), None)
        refunded = sum(x["amount"] for x in refunds)
        remaining = 0 if (amount is None or refund_of is not None) else amount - refunded
        return {"refunds": refunds, "refunded": refunded, "refundableRemaining": remaining, "refundOf": refund_of}

    def refund_links(self, seqs: Iterable[int]) -> dict[int, dict]:
        """For a page of history: seq -> {refundOf} or {refunds: [...]} where there is a link."""
        seqs = sorted(set(seqs))
        out: dict[int, dict] = {}
        if not seqs:
            return out
        with domain_errors(), self.ledger._reader() as conn:
            links = conn.execute(select(RL.c.seq, T.transfers.c.amount, RL.c.original_seq).select_from(
                RL.join(T.transfers, T.transfers.c.seq == RL.c.seq)).where(
                or_(RL.c.original_seq.in_(seqs), RL.c.seq.in_(seqs))).order_by(RL.c.seq)).all()
        for x in links:
            if x.seq in seqs:
                out.setdefault(x.seq, {})["refundOf"] = x.original_seq
            if x.original_seq in seqs:
                out.setdefault(x.original_seq, {}).setdefault("refunds", []).append({"seq": x.seq, "amount": x.amount})
        return out

    def prepare_refund(self, seq: int, by: str, amount: object) -> dict:
        """The refund id the shop's Transfer must name (ledger.core.refunds.refund_id), for `amount`
        of transfer `seq` back to its payer. Only the payee of a payment may; a refund cannot be
        refunded. What remains refundable is checked here for a clear answer, and again by the
        fold at posting (under the head lock), which is what makes it safe under concurrency."""
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= SEQ_MAX:
            raise E.InvalidInput("seq must be a positive entry number (at most 2^63-1)")
        by = normalize_address(by, what="shop")
        amount = check_amount(amount)
        with domain_errors(), self.ledger._reader() as conn:
            row = self._original(conn, seq)
        if row is None:
            with domain_errors(), self.ledger._reader() as conn:
                leg = conn.execute(select(RLEG.c.payee).where(
                    RLEG.c.side == "in", or_(RLEG.c.prepared_seq == seq, RLEG.c.decided_seq == seq))).first()
            if leg is not None and leg.payee == by:
                # the leg moved credit through the alliance's peer account: returning it is a new
                # remote payment the shop signs to the payer in their community
                raise E.NotRefundable(f"entry {seq} is a payment from an allied community: it cannot be refunded "
                                      "at the till; send the amount back as a remote payment to the payer")
            raise E.LedgerError(f"there is no transfer {seq}", code="not_found")
        if row.payee != by:
            # someone else's payment: do not tell them more than that they cannot refund it
            raise E.NotAuthorised("only the payee of a payment may refund it")
        state = self.refund_state(seq)
        if state["refundOf"] is not None:
            raise E.NotRefundable(f"entry {seq} is itself a refund and cannot be refunded")
        if amount > state["refundableRemaining"]:
            raise E.RefundExceedsRemaining(
                f"at most {state['refundableRemaining']} of entry {seq} remains refundable, not {amount}")
        body = entry_body(seq, row.body)
        nonce = secrets.randbits(128)
        rid = refund_id(bytes.fromhex(body["digest"][2:]), nonce)
        with self.ledger.transaction() as conn:
            conn.execute(insert(RI).values(id=rid, original_seq=seq, refund_nonce=str(nonce), shop=by, amount=amount,
                                           created_at=self.ledger.clock()))
        return {"refundId": "0x" + rid.hex(), "refundOf": seq, "refundNonce": str(nonce), "payer": by,
                "payee": row.payer, "currency": row.currency, "amount": amount,
                "refundableRemaining": state["refundableRemaining"]}

    # -- takings --------------------------------------------------------------------------------
    def _takings_rows(self, conn, shop: str, *, after: int = 0, since_ms: int | None = None,
                      until_ms: int | None = None, limit: int | None = None):
        """Payments to the shop (not refunds it received) and refunds it made, in seq order."""
        t = T.transfers
        orig = T.transfers.alias("orig")
        q = (select(t.c.seq, t.c.at, t.c.payer, t.c.payee, t.c.currency, t.c.amount, t.c.request_id,
                    RL.c.original_seq, orig.c.request_id.label("orig_request_id"), T.entries.c.body)
             .select_from(t.join(T.entries, T.entries.c.seq == t.c.seq)
                          .outerjoin(RL, RL.c.seq == t.c.seq).outerjoin(orig, orig.c.seq == RL.c.original_seq))
             .where(t.c.seq > after,
                    or_(and_(t.c.payee == shop, RL.c.seq.is_(None)), and_(t.c.payer == shop, RL.c.seq.isnot(None))))
             .order_by(t.c.seq))
        if since_ms is not None:
            q = q.where(t.c.at >= since_ms)
        if until_ms is not None:
            q = q.where(t.c.at < until_ms)
        if limit is not None:
            q = q.limit(limit)
        rows = list(conn.execute(q).all())
        # payments from an allied community (docs/federation.md): the destination leg, counted at
        # its commit entry (decided_seq: the seq at which the money is the shop's, so the feed's
        # cursor neither skips nor repeats it), in the currency and amount delivered here
        e = T.entries
        lq = (select(RLEG.c.decided_seq.label("seq"), e.c.at, RLEG.c.payer, RLEG.c.payee,
                     RLEG.c.payee_currency.label("currency"), RLEG.c.delivered.label("amount"), RLEG.c.payment_id)
              .select_from(RLEG.join(e, e.c.seq == RLEG.c.decided_seq))
              .where(RLEG.c.side == "in", RLEG.c.payee == shop, RLEG.c.state == "committed",
                     RLEG.c.decided_seq > after)
              .order_by(RLEG.c.decided_seq))
        if since_ms is not None:
            lq = lq.where(e.c.at >= since_ms)
        if until_ms is not None:
            lq = lq.where(e.c.at < until_ms)
        if limit is not None:
            lq = lq.limit(limit)
        legs = [_RemoteRow(r.seq, r.at, r.payer, r.payee, r.currency, r.amount, bytes(r.payment_id))
                for r in conn.execute(lq)]
        if not legs:
            return rows
        merged = sorted(rows + legs, key=lambda r: r.seq)
        return merged[:limit] if limit is not None else merged

    def feed(self, shop: str, *, after: object = None, limit: object = 50, reader_role: str = "shop",
             route: str = "GET /v1/shops/{shop}/takings/feed") -> tuple[list[dict], str]:
        """Takings after the cursor, in seq order; nextCursor is the last seq returned (or the
        cursor given when nothing new). Entries commit in seq order under the head lock, so
        asking again with nextCursor neither repeats nor misses a payment."""
        shop = normalize_address(shop, what="shop")
        after = parse_cursor(after)
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise E.InvalidInput("limit must be an integer")
        limit = max(1, min(FEED_MAX, limit))
        with domain_errors(), self.ledger._reader() as conn:
            rows = self._takings_rows(conn, shop, after=after, limit=limit)
            req_ids = {bytes(r.request_id) for r in rows if r.request_id is not None} \
                | {bytes(r.orig_request_id) for r in rows if r.orig_request_id is not None}
            tills = {bytes(x.request_id): x for x in conn.execute(select(SR).where(SR.c.request_id.in_(sorted(req_ids))))} \
                if req_ids else {}
            pairs = [(bytes(r.request_id), r.payer) for r in rows if r.original_seq is None and r.request_id is not None]
            consents = set()
            if pairs:
                consents = {(bytes(x.request_id), x.member) for x in conn.execute(
                    select(NC.c.request_id, NC.c.member).where(NC.c.request_id.in_(sorted({p[0] for p in pairs}))))}
            named = {p[1] for p in pairs if p in consents}
            names = {x.address: x.display_name for x in conn.execute(
                select(T.profiles.c.address, T.profiles.c.display_name).where(T.profiles.c.address.in_(sorted(named))))} \
                if named else {}
        items, shown = [], []
        for r in rows:
            refund = r.original_seq is not None
            named_id = r.orig_request_id if refund else r.request_id  # a refund is under its payment's till
            till = tills.get(bytes(named_id)) if named_id is not None else None
            remote = getattr(r, "payment_id", None)
            digest = "0x" + remote.hex() if remote is not None else entry_body(r.seq, r.body)["digest"]
            item = {"seq": r.seq, "at": r.at, "currency": r.currency, "amount": r.amount,
                    "kind": "refund" if refund else "payment", "till": till.till if till else None,
                    "requestId": None if r.request_id is None else "0x" + bytes(r.request_id).hex(),
                    "reference": digest[2:10]}
            if remote is not None:  # from an allied community: its payment id, not a transfer seq
                item["remote"] = {"paymentId": digest}
            if refund:
                item["refundOf"] = r.original_seq
            if till is not None and till.total_minor is not None:
                item["mixed"] = {"totalMinor": till.total_minor, "creditShareBp": till.credit_share_bp,
                                 "creditMinor": till.credit_minor}
            if not refund and r.request_id is not None and (bytes(r.request_id), r.payer) in consents \
                    and names.get(r.payer):
                item["customerName"] = names[r.payer]
                shown.append(r.payer)
            items.append(item)
        if shown and self.access is not None:  # each time the shop is shown a consenting customer's name
            self.access.record(Reader(shop, reader_role), sorted(set(shown)), ["profile"], NAME_PURPOSE,
                               "consent", route, self.ledger.clock())
        nxt = str(rows[-1].seq) if rows else str(after)
        return items, nxt

    def report(self, shop: str, *, from_day: object, to_day: object, period: str = "day",
               till: object = None) -> tuple[list[dict], list[dict]]:
        """Rows per (period, till, currency): count and sum of payments, refunds made, net; and
        totals per currency. UTC days, both ends inclusive. A refund counts on the day it was
        made, under the till of the payment it returns."""
        shop = normalize_address(shop, what="shop")
        start, end = parse_day(from_day, "from"), parse_day(to_day, "to")
        if end < start:
            raise E.InvalidInput("to is before from")
        if (end - start).days >= REPORT_MAX_DAYS:
            raise E.InvalidInput(f"a report covers at most {REPORT_MAX_DAYS} days")
        if period not in PERIODS:
            raise E.InvalidInput(f"period must be one of {', '.join(PERIODS)}")
        want_till = None if till is None else check_till(till)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        since = int((datetime(start.year, start.month, start.day, tzinfo=UTC) - epoch).total_seconds() * 1000)
        until = int((datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1) - epoch)
                    .total_seconds() * 1000)
        with domain_errors(), self.ledger._reader() as conn:
            rows = self._takings_rows(conn, shop, since_ms=since, until_ms=until)
            req_ids = {bytes(x) for r in rows for x in (r.request_id, r.orig_request_id) if x is not None}
            tills = {bytes(x.request_id): x.till for x in conn.execute(
                select(SR.c.request_id, SR.c.till).where(SR.c.request_id.in_(sorted(req_ids))))} if req_ids else {}
        cells: dict[tuple, dict] = {}
        for r in rows:
            refund = r.original_seq is not None
            rid = r.orig_request_id if refund else r.request_id
            label = tills.get(bytes(rid)) if rid is not None else None
            if till is not None and label != want_till:
                continue
            key = (period_of(r.at, period), label or "", r.currency)
            c = cells.setdefault(key, {"count": 0, "sum": 0, "refunds": 0})
            if refund:
                c["refunds"] += r.amount
            else:
                c["count"] += 1
                c["sum"] += r.amount
        out = [{"period": p, "till": t, "currency": cur, **v, "net": v["sum"] - v["refunds"]}
               for (p, t, cur), v in sorted(cells.items())]
        totals: dict[str, dict] = {}
        for row in out:
            tot = totals.setdefault(row["currency"], {"currency": row["currency"], "count": 0, "sum": 0, "refunds": 0})
            tot["count"] += row["count"]
            tot["sum"] += row["sum"]
            tot["refunds"] += row["refunds"]
        return out, [{**v, "net": v["sum"] - v["refunds"]} for _, v in sorted(totals.items())]


REPORT_COLUMNS = ("period", "till", "currency", "count", "sum", "refunds", "net")


def report_csv(rows: list[dict]) -> str:
    """The report as CSV (amounts in minor units, as in JSON). A till label starting with = + - @
    is prefixed with ' so a spreadsheet does not run it as a formula."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(REPORT_COLUMNS)
    for r in rows:
        till = r["till"]
        if till and till[0] in "=+-@\t\r":
            till = "'" + till
        w.writerow([r["period"], till, r["currency"], r["count"], r["sum"], r["refunds"], r["net"]])
    return buf.getvalue()
