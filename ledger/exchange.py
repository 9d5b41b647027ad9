"""The exchange board's use cases (docs/exchange.md): listings, search, conversations,
arrangements, payment through a linked payment request, moderation, retention and the
k-anonymous hours-by-category statistics.

Rules live in ledger.core.exchange; this module reads and writes the tables of
ledger.store.exchange_tables in one transaction per use case. Nothing here writes to the log:
the payment of an arrangement is an ordinary payment request (ledger.requests) the receiver
pays with a signed transfer.

Visibility, enforced here so every face gets it:
- a listing is seen by every member while active, unhidden and unexpired (without its
  author's address), by its author always, and by treasurers (moderation); to anyone else it
  does not exist (`unknown_listing`);
- a conversation, its messages and its arrangements are seen by their two parties only; to
  anyone else, treasurers included, they do not exist."""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import (
    and_,
    column,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    table,
    text,
    update,
)

from .core import errors as E
from .core import exchange as X
from .core.vocab import Role
from .exchange_stats import freeze_closed_months, hours_by_category
from .requests import PaymentRequest, PaymentRequests, clamp_limit
from .store import tables as T
from .store.errors import domain_errors
from .store.exchange_tables import EXCHANGE_TABLES, FTS_TABLE, SEARCH_EXPR
from .store.exchange_tables import arrangements as A
from .store.exchange_tables import conversations as C
from .store.exchange_tables import listing_moderation as M
from .store.exchange_tables import listings as L
from .store.exchange_tables import messages as MS
from .store.exchange_tables import thanks as TH
from .store.request_tables import payment_requests as R
from .store.unit_of_work import PAYS

DEFAULT_CONFIG = Path(__file__).with_name("exchange_config.json")
POSTING_ROLES = (Role.MEMBER, Role.SHOP)  # accounts that give and receive; treasurers moderate
MODERATOR_ROLES = (Role.TREASURER,)
MAX_QUERY_WORDS = 12
MAX_BIGINT = 2**63 - 1  # a cursor's integers are BigInteger columns' values
MAX_MESSAGE_ID = 2**31 - 1  # messages.id is a 32-bit INTEGER on PostgreSQL
MANY_MATCHES = 1000  # SQLite: from this many full-text matches on, a search walks the order's index


def load_config(path: str | os.PathLike | None = None) -> X.ExchangeConfig:
    """The categories and areas at `path`, else $AYNI_EXCHANGE_CONFIG, else the shipped ones."""
    return _load_config(str(path or os.environ.get("AYNI_EXCHANGE_CONFIG") or DEFAULT_CONFIG))


@lru_cache(maxsize=8)
def _load_config(path: str) -> X.ExchangeConfig:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise E.InvalidInput(f"cannot read the exchange configuration {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise E.InvalidInput(f"exchange configuration {path} is not JSON: {exc}") from None
    return X.parse_config(doc)


# -- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Listing:
    id: str
    author: str
    kind: str
    title: str
    description: str
    category: str
    area: str
    currency: str
    price_unit: str
    price: int | None
    availability: str | None
    slots: str | None
    status: str  # active | paused | closed | expired (computed)
    created_at: int
    updated_at: int
    expires_at: int
    closed_at: int | None
    hidden_at: int | None
    hidden_reason: str | None
    public: bool  # visible to every member now


@dataclass(frozen=True)
class Moderation:
    id: int
    action: str
    moderator: str
    reason: str
    at: int


@dataclass(frozen=True)
class Conversation:
    id: str
    listing_id: str
    listing_kind: str
    listing_title: str
    listing_status: str
    author: str
    responder: str
    created_at: int
    last_at: int


@dataclass(frozen=True)
class Message:
    id: int
    sender: str
    body: str
    at: int


@dataclass(frozen=True)
class Arrangement:
    id: str
    conversation_id: str
    listing_id: str
    category: str
    proposer: str
    provider: str
    receiver: str
    what: str
    when: str | None
    minutes: int | None
    currency: str
    amount: int
    status: str  # proposed | accepted | payment_requested | paid | cancelled
    created_at: int
    decided_at: int | None
    request_id: str | None
    thanks_received: str | None  # only in the recipient's view


# -- cursors (opaque, as elsewhere in the API) ------------------------------------------------
def _cursor(*parts) -> str:
    return base64.urlsafe_b64encode(":".join(map(str, parts)).encode()).decode().rstrip("=")


def _uncursor(cursor: str, shape: str) -> list[str]:
    """`shape`: one letter per part, i = integer, h = 32-hex id."""
    try:
        if not isinstance(cursor, str) or len(cursor) > 200:
            raise ValueError
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii").split(":")
        if len(parts) != len(shape):
            raise ValueError
        for part, kind in zip(parts, shape):
            if not (re.fullmatch(r"[0-9]{1,19}", part) if kind == "i" else re.fullmatch(r"[0-9a-f]{32}", part)):
                raise ValueError
            if kind == "i" and int(part) > MAX_BIGINT:  # 19 digits may pass 64 bits: the columns' range
                raise ValueError
        return parts
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise E.InvalidInput("cursor is malformed: pass back the nextCursor of the previous page") from None


def _unknown_listing(listing_id: str) -> E.UnknownListing:
    """One answer for a listing that does not exist and one the asker may not see, change or
    answer: a different message would tell a stranger that a hidden or paused listing exists."""
    return E.UnknownListing(f"there is no listing {listing_id} you can see or act on")


def _new_id() -> str:
    return secrets.token_hex(16)


def _listing(row, now: int) -> Listing:
    return Listing(row.id, row.author, row.kind, row.title, row.description, row.category, row.area, row.currency,
                   row.price_unit, row.price, row.availability, row.slots,
                   X.listing_status(row.status, row.expires_at, now), row.created_at, row.updated_at,
                   row.expires_at, row.closed_at, row.hidden_at, row.hidden_reason,
                   X.is_public(row.status, row.hidden_at, row.expires_at, now))


def search_words(query: object) -> list[str]:
    """The whole words of a search, normalised as the stored text (core.exchange.search_text),
    at most MAX_QUERY_WORDS."""
    if not isinstance(query, str) or len(query) > 200:
        raise E.InvalidInput("q is text of at most 200 characters")
    words = X.search_text(query).split()
    if not words:
        raise E.InvalidInput("q holds no word to search for")
    return words[:MAX_QUERY_WORDS]


class Exchange:
    def __init__(self, ledger, *, config: X.ExchangeConfig | None = None, requests: PaymentRequests | None = None,
                 shuffle_secret: bytes = b""):
        """`shuffle_secret`: keys the daily shuffle (the API passes one derived from the server's
        secret, the same for every worker); without it the order is still fair but computable."""
        self.ledger = ledger
        self.shuffle_secret = shuffle_secret
        self.config = config or load_config()
        self.requests = requests or PaymentRequests(ledger)
        self._sqlite = ledger.engine.dialect.name == "sqlite"

    # -- helpers ----------------------------------------------------------------------------
    def _currencies(self) -> set[str]:
        return set(self.ledger.currencies)

    def _read(self):
        return self.ledger._reader()

    def _row(self, conn, listing_id: str):
        X.check_object_id(listing_id, "listing")
        row = conn.execute(select(L).where(L.c.id == listing_id)).first()
        if row is None:
            raise _unknown_listing(listing_id)
        return row

    def _fts_write(self, conn, row) -> None:
        if self._sqlite:  # PostgreSQL's GIN index follows the table by itself
            conn.execute(text(f"DELETE FROM {FTS_TABLE} WHERE rowid = :r"), {"r": row.text_rowid})
            conn.execute(text(f"INSERT INTO {FTS_TABLE} (rowid, listing_id, title, description) "
                              "VALUES (:r, :id, :t, :d)"),
                         {"r": row.text_rowid, "id": row.id, "t": X.search_text(row.title),
                          "d": X.search_text(row.description)})

    @staticmethod
    def _check_role(role: str, what: str) -> None:
        if role not in POSTING_ROLES:
            raise E.NotAuthorised(f"only members and shops {what}")

    # -- configuration ----------------------------------------------------------------------
    def config_view(self) -> dict:
        return {"categories": [{"id": i, "label": lab} for i, lab in self.config.categories],
                "areas": [{"id": i, "label": lab} for i, lab in self.config.areas],
                "kinds": list(X.KINDS), "priceUnits": list(X.PRICE_UNITS), "weekdays": list(X.WEEKDAYS),
                "expiryDays": {k: {"default": d, "max": X.MAX_EXPIRY_DAYS} for k, d in X.DEFAULT_EXPIRY_DAYS.items()},
                "currencies": sorted(self._currencies()), "orders": ["newest", "shuffle"]}

    # -- listings ---------------------------------------------------------------------------
    def post(self, author: str, role: str, fields: dict) -> Listing:
        self._check_role(role, "post listings")
        now = self.ledger.clock()
        values = X.check_listing(fields, self.config, self._currencies(), now)
        lid = _new_id()
        with self.ledger.transaction() as conn:
            # a re-post: the author closed (or let expire) a listing of the same kind and category
            # posted within REPOST_DAYS; the new one takes its place in both orders
            place = conn.execute(select(L.c.created_at, L.c.shuffle_key).where(
                L.c.author == author, L.c.kind == values["kind"], L.c.category == values["category"],
                L.c.created_at > now - X.REPOST_DAYS * X.DAY_MS, or_(L.c.status == "closed", L.c.expires_at <= now))
                .order_by(L.c.created_at).limit(1)).first()
            created, key = (place.created_at, place.shuffle_key) if place else \
                (now, secrets.randbelow(X.SHUFFLE_PRIME))
            # ranked by the next shuffled search (_refresh_shuffle), with the secret of the reader
            row = {**values, "id": lid, "author": author, "status": "active", "shuffle_key": key,
                   "shuffle_day": -1, "shuffle_rank": 0,
                   "text_rowid": secrets.randbits(62), "created_at": created, "updated_at": now,
                   "search_text": X.search_text(f"{values['title']} {values['description']}"),
                   "closed_at": None, "hidden_at": None, "hidden_reason": None}
            row.setdefault("availability", None)
            row.setdefault("slots", None)
            conn.execute(insert(L).values(**row))
            stored = self._row(conn, lid)
            self._fts_write(conn, stored)
            return _listing(stored, now)

    def edit(self, listing_id: str, by: str, fields: dict) -> Listing:
        now = self.ledger.clock()
        with self.ledger.transaction() as conn:
            row = self._row(conn, listing_id)
            if row.author != by:
                raise _unknown_listing(listing_id)
            if row.status == "closed":
                raise E.InvalidTransition("a closed listing cannot be changed: post a new one")
            values = X.check_listing(fields, self.config, self._currencies(), now, current=row._mapping)
            if "title" in values or "description" in values:
                values["search_text"] = X.search_text(f"{values.get('title', row.title)} "
                                                      f"{values.get('description', row.description)}")
            if values:
                conn.execute(update(L).where(L.c.id == listing_id).values(**values, updated_at=now))
            new = self._row(conn, listing_id)
            if "title" in values or "description" in values:
                self._fts_write(conn, new)
            return _listing(new, now)

    def act(self, listing_id: str, by: str, action: str) -> Listing:
        """pause | resume | close, by the author. Closing is final and needs no reason."""
        now = self.ledger.clock()
        with self.ledger.transaction() as conn:
            row = self._row(conn, listing_id)
            if row.author != by:
                raise _unknown_listing(listing_id)
            status = X.listing_transition(row.status, action, expires_at=row.expires_at, now_ms=now)
            conn.execute(update(L).where(L.c.id == listing_id).values(
                status=status, updated_at=now, **({"closed_at": now} if status == "closed" else {})))
            return _listing(self._row(conn, listing_id), now)

    def moderate(self, listing_id: str, by: str, role: str, action: str, reason: object) -> Listing:
        """hide | unhide by a treasurer, with a reason the author reads; logged either way."""
        if role not in MODERATOR_ROLES:
            raise E.NotAuthorised("only a treasurer may hide or unhide a listing")
        reason = X.check_reason(reason)
        now = self.ledger.clock()
        with self.ledger.transaction() as conn:
            row = self._row(conn, listing_id)
            if (action == "hide") == (row.hidden_at is not None):
                raise E.InvalidTransition(f"the listing is {'already' if action == 'hide' else 'not'} hidden")
            conn.execute(update(L).where(L.c.id == listing_id).values(
                hidden_at=now if action == "hide" else None, hidden_reason=reason if action == "hide" else None))
            conn.execute(insert(M).values(listing_id=listing_id, action=action, moderator=by, reason=reason, at=now))
            return _listing(self._row(conn, listing_id), now)

    def moderation_log(self, listing_id: str, by: str, role: str) -> list[Moderation]:
        with domain_errors(), self._read() as conn:
            row = self._row(conn, listing_id)
            if row.author != by and role not in MODERATOR_ROLES:
                raise _unknown_listing(listing_id)
            rows = conn.execute(select(M).where(M.c.listing_id == listing_id).order_by(M.c.id)).all()
        return [Moderation(r.id, r.action, r.moderator, r.reason, r.at) for r in rows]

    def get(self, listing_id: str, by: str, role: str) -> Listing:
        """The listing if `by` may see it (see the module docstring), else UnknownListing."""
        now = self.ledger.clock()
        with domain_errors(), self._read() as conn:
            listing = _listing(self._row(conn, listing_id), now)
        if listing.public or listing.author == by or role in MODERATOR_ROLES:
            return listing
        raise _unknown_listing(listing_id)

    def mine(self, author: str, *, status: str | None = None, limit: int | None = 50,
             cursor: str | None = None) -> tuple[list[Listing], str | None]:
        if status is not None and status not in ("active", "paused", "closed", "expired", "hidden"):
            raise E.InvalidInput("status is one of active, paused, closed, expired, hidden")
        limit, now = clamp_limit(limit), self.ledger.clock()
        q = select(L).where(L.c.author == author)
        if status == "expired":
            q = q.where(L.c.status != "closed", L.c.expires_at <= now)
        elif status in ("active", "paused"):
            q = q.where(L.c.status == status, L.c.expires_at > now)
        elif status == "closed":
            q = q.where(L.c.status == "closed")
        elif status == "hidden":
            q = q.where(L.c.hidden_at.isnot(None))
        return self._newest_page(q, limit, cursor, now)

    def _newest_page(self, q, limit: int, cursor: str | None, now: int) -> tuple[list[Listing], str | None]:
        if cursor is not None:
            at, lid = _uncursor(cursor, "ih")
            q = q.where(or_(L.c.created_at < int(at), and_(L.c.created_at == int(at), L.c.id < lid)))
        q = q.order_by(L.c.created_at.desc(), L.c.id.desc()).limit(limit + 1)
        with domain_errors(), self._read() as conn:
            rows = conn.execute(q).all()
        page = [_listing(r, now) for r in rows[:limit]]
        return page, (_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None)

    def search(self, *, kind: str | None = None, category: str | None = None, area: str | None = None,
               currency: str | None = None, q: str | None = None, order: str = "newest",
               limit: int | None = 50, cursor: str | None = None) -> tuple[list[Listing], str | None, int]:
        """The listings every member sees (active, unhidden, unexpired), filtered, in one of the
        two orders: newest first, or the daily shuffle. Returns (page, next cursor, day); the
        day is the shuffle's (a cursor keeps the day its first page had)."""
        if order not in ("newest", "shuffle"):
            raise E.InvalidInput("order is `newest` or `shuffle` (there is no other: nothing is ranked)")
        if kind is not None and kind not in X.KINDS:
            raise E.InvalidInput("kind is `offer` or `need`")
        limit, now = clamp_limit(limit), self.ledger.clock()
        stmt = select(L).where(L.c.status == "active", L.c.hidden_at.is_(None), L.c.expires_at > now)
        for col, value in ((L.c.kind, kind), (L.c.category, category), (L.c.area, area),
                              (L.c.currency, currency)):
            if value is not None:
                stmt = stmt.where(col == value)
        if q is not None and q != "":
            stmt = stmt.where(self._matches(search_words(q)))
        day = X.day_of(now)
        if order == "newest":
            page, nxt = self._newest_page(stmt, limit, cursor, now)
            return page, nxt, day
        if cursor is not None:
            c_day, c_rank, c_id = _uncursor(cursor, "iih")
            # only today's order, or yesterday's for a paging begun before midnight: no other
            # day's order can be read (tomorrow's would be known a day early)
            if int(c_day) not in (day, day - 1) or int(c_rank) >= X.SHUFFLE_PRIME:
                raise E.InvalidInput("cursor is from another day: start the shuffled list again without a cursor")
            day = int(c_day)
        if day == X.day_of(now):  # today's ranks are stored: a page is a range of an index
            self._refresh_shuffle(day)
            rank = L.c.shuffle_rank
        else:  # a cursor from yesterday: finish that day's order, computed
            mult, add = X.shuffle_params(day, self.shuffle_secret)
            rank = (L.c.shuffle_key * literal_column(str(mult)) + literal_column(str(add))) \
                % literal_column(str(X.SHUFFLE_PRIME))
        if cursor is not None:
            stmt = stmt.where(or_(rank > int(c_rank), and_(rank == int(c_rank), L.c.id > c_id)))
        stmt = stmt.order_by(rank, L.c.id).limit(limit + 1)
        with domain_errors(), self._read() as conn:
            rows = conn.execute(stmt).all()
        page = [_listing(r, now) for r in rows[:limit]]
        nxt = None
        if len(rows) > limit:
            last = rows[limit - 1]
            stored = day == X.day_of(now)  # today's page ordered by the stored rank: the cursor names that
            nxt = _cursor(day, last.shuffle_rank if stored else
                          X.shuffle_rank(day, last.shuffle_key, self.shuffle_secret), last.id)
        return page, nxt, day

    def _refresh_shuffle(self, day: int) -> None:
        """Store day `day`'s rank of every listing not ranked for it yet: once a day this
        rewrites the rank column (the first shuffled search of the day pays for it), otherwise
        it is one index probe. Concurrent refreshes write the same values."""
        stale = or_(L.c.shuffle_day < day, L.c.shuffle_day > day)
        with domain_errors(), self._read() as conn:
            if conn.execute(select(L.c.id).where(stale).limit(1)).first() is None:
                return
        mult, add = X.shuffle_params(day, self.shuffle_secret)
        with self.ledger.transaction() as conn:
            conn.execute(update(L).where(stale).values(
                shuffle_day=day, shuffle_rank=(L.c.shuffle_key * literal_column(str(mult)) + literal_column(str(add)))
                % literal_column(str(X.SHUFFLE_PRIME))))

    def _matches(self, words: list[str]):
        if self._sqlite:  # each word a quoted FTS5 string: every word must occur
            match = " ".join(f'"{w}"' for w in words)
            found = select(column("rowid")).select_from(table(FTS_TABLE)) \
                .where(text(f"{FTS_TABLE} MATCH :match").bindparams(match=match))
            # SQLite cannot estimate a match's size: for a word in many listings, walk the order's
            # index and test membership (`+ 0` keeps it off the text_rowid index); for a rarer one,
            # fetch the matches by text_rowid and sort them
            return (L.c.text_rowid + 0 if self._many(match) else L.c.text_rowid).in_(found)
        return text(f"{SEARCH_EXPR} @@ plainto_tsquery('simple', :match)").bindparams(match=" ".join(words))

    def _many(self, match: str) -> bool:
        probe = text(f"SELECT count(*) FROM (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :match "
                     f"LIMIT {MANY_MATCHES})")
        with domain_errors(), self._read() as conn:
            return conn.execute(probe, {"match": match}).scalar_one() >= MANY_MATCHES

    # -- conversations ----------------------------------------------------------------------
    def answer(self, listing_id: str, by: str, role: str, message: object) -> tuple[Conversation, bool]:
        """"I can help" / "I'm interested": the conversation of `by` about this listing (opened,
        with the first message, if new). (conversation, created)."""
        self._check_role(role, "answer listings")
        body = X.check_message(message)
        now = self.ledger.clock()
        with self.ledger.transaction() as conn:
            row = self._row(conn, listing_id)
            if not X.is_public(row.status, row.hidden_at, row.expires_at, now):
                raise _unknown_listing(listing_id)
            if row.author == by:
                raise E.InvalidInput("this is your own listing")
            existing = conn.execute(select(C.c.id).where(C.c.listing_id == listing_id, C.c.responder == by)).first()
            if existing is not None:
                cid, created = existing.id, False
            else:
                cid, created = _new_id(), True
                conn.execute(insert(C).values(id=cid, listing_id=listing_id, author=row.author, responder=by,
                                              created_at=now, last_at=now))
            conn.execute(insert(MS).values(conversation_id=cid, sender=by, body=body, at=now))
            conn.execute(update(C).where(C.c.id == cid).values(last_at=now))
            return self._conversation(conn, cid, by, self.ledger.clock()), created

    @staticmethod
    def _conversation_query():
        return select(C, L.c.kind, L.c.title, L.c.status.label("listing_status"), L.c.expires_at,
                      L.c.hidden_at).select_from(C.join(L, L.c.id == C.c.listing_id))

    def _conversation(self, conn, cid: str, by: str, now: int) -> Conversation:
        X.check_object_id(cid, "conversation")
        row = conn.execute(self._conversation_query().where(C.c.id == cid)).first()
        if row is None or by not in (row.author, row.responder):
            raise E.UnknownConversation(f"there is no conversation {cid} of yours")
        return self._conversation_view(row, now)

    @staticmethod
    def _conversation_view(row, now: int) -> Conversation:
        return Conversation(row.id, row.listing_id, row.kind, row.title,
                            X.listing_status(row.listing_status, row.expires_at, now), row.author, row.responder,
                            row.created_at, row.last_at)

    def conversation(self, cid: str, by: str) -> Conversation:
        with domain_errors(), self._read() as conn:
            return self._conversation(conn, cid, by, self.ledger.clock())

    def conversations(self, by: str, *, limit: int | None = 50, cursor: str | None = None):
        limit, now = clamp_limit(limit), self.ledger.clock()
        q = self._conversation_query().where(or_(C.c.author == by, C.c.responder == by))
        if cursor is not None:
            at, cid = _uncursor(cursor, "ih")
            q = q.where(or_(C.c.last_at < int(at), and_(C.c.last_at == int(at), C.c.id < cid)))
        q = q.order_by(C.c.last_at.desc(), C.c.id.desc()).limit(limit + 1)
        with domain_errors(), self._read() as conn:
            rows = conn.execute(q).all()
        page = [self._conversation_view(r, now) for r in rows[:limit]]
        return page, (_cursor(page[-1].last_at, page[-1].id) if len(rows) > limit else None)

    def messages(self, cid: str, by: str, *, after: int = 0, limit: int | None = 100):
        limit = clamp_limit(limit, 100)
        if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= MAX_MESSAGE_ID:
            raise E.InvalidInput(f"after is a message id (an integer from 0 to {MAX_MESSAGE_ID})")
        with domain_errors(), self._read() as conn:
            self._conversation(conn, cid, by, self.ledger.clock())
            rows = conn.execute(select(MS).where(MS.c.conversation_id == cid, MS.c.id > after)
                                .order_by(MS.c.id).limit(limit + 1)).all()
        page = [Message(r.id, r.sender, r.body, r.at) for r in rows[:limit]]
        return page, (page[-1].id if len(rows) > limit else None)

    def send(self, cid: str, by: str, message: object) -> Message:
        body = X.check_message(message)
        now = self.ledger.clock()
        with self.ledger.transaction() as conn:
            self._conversation(conn, cid, by, now)
            mid = conn.execute(insert(MS).values(conversation_id=cid, sender=by, body=body, at=now)
                               .returning(MS.c.id)).scalar_one()
            conn.execute(update(C).where(C.c.id == cid).values(last_at=now))
        return Message(mid, by, body, now)

    # -- arrangements -----------------------------------------------------------------------
    def propose(self, cid: str, by: str, fields: dict) -> Arrangement:
        time_currencies = frozenset(c for c, v in self.ledger.currencies.items() if v.style == "time")
        values = X.check_arrangement(fields, self._currencies(), time_currencies)
        now = self.ledger.clock()
        with self.ledger.transaction() as conn:
            conv = self._conversation(conn, cid, by, now)
            provider, receiver = X.provider_and_receiver(conv.listing_kind, conv.author, conv.responder)
            waiting = conn.execute(select(func.count()).select_from(A).where(
                A.c.conversation_id == cid, A.c.status == "proposed")).scalar_one()
            if waiting >= X.MAX_OPEN_PROPOSALS:
                raise E.InvalidTransition(f"this conversation already has {X.MAX_OPEN_PROPOSALS} proposals "
                                          "waiting for an answer: accept or cancel some first")
            aid = _new_id()
            conn.execute(insert(A).values(id=aid, conversation_id=cid, listing_id=conv.listing_id, proposer=by,
                                          provider=provider, receiver=receiver, status="proposed", created_at=now,
                                          decided_at=None, request_id=None, **values))
            return self._arrangement(conn, aid, by, now)

    @staticmethod
    def _arrangement_query():
        paid = T.transfers.c.seq.label("pay_seq")
        return select(A, L.c.category, R.c.status.label("r_status"), R.c.expires_at.label("r_expires"), paid) \
            .select_from(A.join(L, L.c.id == A.c.listing_id).outerjoin(R, R.c.id == A.c.request_id)
                         .outerjoin(T.transfers, PAYS))

    @staticmethod
    def _request_status(row, now: int) -> str | None:
        if row.request_id is None or row.r_status is None:
            return None
        if row.pay_seq is not None:
            return "paid"
        if row.r_status == "declined":
            return "declined"
        return "expired" if row.r_expires < now else "open"

    def _arrangement_view(self, conn, row, by: str, now: int) -> Arrangement:
        note = conn.execute(select(TH.c.body).where(TH.c.arrangement_id == row.id, TH.c.recipient == by)) \
            .scalar_one_or_none()
        return Arrangement(row.id, row.conversation_id, row.listing_id, row.category, row.proposer, row.provider,
                           row.receiver, row.what, row.when_text, row.minutes, row.currency, row.amount,
                           X.arrangement_status(row.status, self._request_status(row, now)), row.created_at,
                           row.decided_at, "0x" + bytes(row.request_id).hex() if row.request_id else None, note)

    def _arrangement(self, conn, aid: str, by: str, now: int) -> Arrangement:
        X.check_object_id(aid, "arrangement")
        row = conn.execute(self._arrangement_query().where(A.c.id == aid)).first()
        if row is None or by not in (row.provider, row.receiver):
            raise E.UnknownArrangement(f"there is no arrangement {aid} of yours")
        return self._arrangement_view(conn, row, by, now)

    def arrangement(self, aid: str, by: str) -> Arrangement:
        with domain_errors(), self._read() as conn:
            return self._arrangement(conn, aid, by, self.ledger.clock())

    def arrangements(self, by: str, *, status: str | None = None, conversation: str | None = None,
                     limit: int | None = 50, cursor: str | None = None):
        """Yours, newest first; `status` filters after the payment state is derived."""
        statuses = ("proposed", "accepted", "payment_requested", "paid", "cancelled")
        if status is not None and status not in statuses:
            raise E.InvalidInput(f"status is one of {', '.join(statuses)}")
        limit, now = clamp_limit(limit), self.ledger.clock()
        q = self._arrangement_query().where(or_(A.c.provider == by, A.c.receiver == by))
        if conversation is not None:
            q = q.where(A.c.conversation_id == X.check_object_id(conversation, "conversation"))
        if status is not None:  # the derived status in SQL (as _request_status), so paging is a LIMIT
            paid = T.transfers.c.seq.isnot(None)
            asked = and_(A.c.request_id.isnot(None), R.c.status.isnot(None), T.transfers.c.seq.is_(None),
                         R.c.status != "declined", R.c.expires_at >= now)
            q = q.where(A.c.status == ("accepted" if status in ("accepted", "payment_requested", "paid") else status))
            if status == "paid":
                q = q.where(paid)
            elif status == "payment_requested":
                q = q.where(asked)
            elif status == "accepted":
                q = q.where(~paid, ~asked)
        if cursor is not None:
            at, aid = _uncursor(cursor, "ih")
            q = q.where(or_(A.c.created_at < int(at), and_(A.c.created_at == int(at), A.c.id < aid)))
        q = q.order_by(A.c.created_at.desc(), A.c.id.desc()).limit(limit + 1)
        with domain_errors(), self._read() as conn:
            rows = conn.execute(q).all()
            page = [self._arrangement_view(conn, r, by, now) for r in rows[:limit]]
        return page, (_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None)

    def accept(self, aid: str, by: str) -> Arrangement:
        now = self.ledger.clock()
        with self.ledger.transaction() as conn:
            a = self._arrangement(conn, aid, by, now)
            X.check_accept(a.status, a.proposer, by)
            done = conn.execute(update(A).where(A.c.id == aid, A.c.status == "proposed")
                                .values(status="accepted", decided_at=now))
            self._changed(conn, done, aid, by, now, "accepted")
            return self._arrangement(conn, aid, by, now)

    def _changed(self, conn, result, aid: str, by: str, now: int, what: str) -> None:
        """A guarded UPDATE that changed no row lost a race (the other party cancelled, or a
        payment was requested meanwhile): 409 with the status it has now, never a 200 whose
        body contradicts the action."""
        if result.rowcount != 1:
            current = self._arrangement(conn, aid, by, now).status
            raise E.InvalidTransition(f"the arrangement was not {what}: it changed meanwhile and is now {current}")

    def cancel(self, aid: str, by: str) -> Arrangement:
        """Either party; no reason asked, nothing counted. A payment request already sent for
        it is withdrawn in the same transaction (shown to its payer as declined): a cancelled
        arrangement can no longer be paid. Decided under the log-head lock every payment
        takes, so a cancel and a payment of its request never both succeed."""
        now = self.ledger.clock()
        with self.ledger.unit_of_work() as uow:
            uow.lock_head()
            conn = uow.conn
            a = self._arrangement(conn, aid, by, now)
            X.check_cancel(a.status)
            rid = bytes.fromhex(a.request_id[2:]) if a.request_id else None
            if a.status == "payment_requested":
                uow.decline_request(rid, now)
            # guarded by what was read: a payment requested meanwhile makes this change no row
            same = A.c.request_id.is_(None) if rid is None else A.c.request_id == rid
            done = conn.execute(update(A).where(A.c.id == aid, A.c.status.in_(("proposed", "accepted")), same)
                                .values(status="cancelled", decided_at=now))
            self._changed(conn, done, aid, by, now, "cancelled")
            return self._arrangement(conn, aid, by, now)

    def request_payment(self, aid: str, by: str, *, expires_in_s: int = 7 * 24 * 3600,
                        memo: str | None = None) -> tuple[Arrangement, PaymentRequest]:
        """The provider asks the receiver for the agreed amount: an ordinary payment request
        (ledger.requests), tied to the arrangement in the same transaction."""
        a = self.arrangement(aid, by)
        X.check_request_payment(a.status, a.provider, by)

        def link(conn, rid: bytes) -> None:  # re-checked under the request's transaction
            row = conn.execute(self._arrangement_query().where(A.c.id == aid)).first()
            X.check_request_payment(X.arrangement_status(row.status, self._request_status(row, self.ledger.clock())),
                                    row.provider, by)
            old = A.c.request_id.is_(None) if row.request_id is None else A.c.request_id == row.request_id
            if conn.execute(update(A).where(A.c.id == aid, A.c.status == "accepted", old)
                            .values(request_id=rid)).rowcount != 1:  # cancelled or asked meanwhile
                raise E.InvalidTransition("the arrangement changed meanwhile: payment was not requested")

        request = self.requests.create(payee=a.provider, payer=a.receiver, currency=a.currency, amount=a.amount,
                                       memo=memo, expires_in_s=expires_in_s, link=link)
        return self.arrangement(aid, by), request

    def thank(self, aid: str, by: str, note: object) -> None:
        """A private note to the other party: only they read it; nothing counts it."""
        body = X.check_thanks(note)
        now = self.ledger.clock()
        with self.ledger.transaction() as conn:
            a = self._arrangement(conn, aid, by, now)
            X.check_thanks_allowed(a.status)
            if conn.execute(select(TH.c.at).where(TH.c.arrangement_id == aid, TH.c.sender == by)).first():
                raise E.InvalidTransition("you already thanked for this arrangement")
            recipient = a.receiver if by == a.provider else a.provider
            conn.execute(insert(TH).values(arrangement_id=aid, sender=by, recipient=recipient, body=body, at=now))



# -- retention ---------------------------------------------------------------------------------
def erase_closed(ledger, *, period_days: int, now_ms: int | None = None) -> int:
    """Erase every listing closed or expired more than `period_days` ago, with its search
    row, moderation log, conversations, messages, arrangements and notes. The payment
    requests they linked stay (the ledger's). Returns the number of listings erased."""
    now = ledger.clock() if now_ms is None else now_ms
    cut = now - period_days * X.DAY_MS
    sqlite = ledger.engine.dialect.name == "sqlite"
    with ledger.transaction() as conn:
        # closed months' statistics are frozen before any arrangement of theirs goes (exchange_stats)
        freeze_closed_months(conn, ledger.clock())
        found = conn.execute(select(L.c.id, L.c.text_rowid).where(or_(
            L.c.expires_at < cut, and_(L.c.status == "closed", L.c.closed_at < cut)))).all()
        _erase_listings(conn, found, sqlite)
    return len(found)


def _erase_listings(conn, found, sqlite: bool) -> int:
    """Delete listings (rows with .id and .text_rowid) and everything of theirs; returns the
    number of conversations that went with them."""
    ids = [r.id for r in found]
    text_rows = {r.id: r.text_rowid for r in found}
    conversations = 0
    for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
        arr = select(A.c.id).where(A.c.listing_id.in_(chunk))
        conv = select(C.c.id).where(C.c.listing_id.in_(chunk))
        conn.execute(delete(TH).where(TH.c.arrangement_id.in_(arr)))
        conn.execute(delete(A).where(A.c.listing_id.in_(chunk)))
        conn.execute(delete(MS).where(MS.c.conversation_id.in_(conv)))
        conversations += conn.execute(delete(C).where(C.c.listing_id.in_(chunk))).rowcount
        conn.execute(delete(M).where(M.c.listing_id.in_(chunk)))
        if sqlite:
            conn.execute(text(f"DELETE FROM {FTS_TABLE} WHERE rowid IN "
                              f"({', '.join(f':p{i}' for i in range(len(chunk)))})"),
                         {f"p{i}": text_rows[v] for i, v in enumerate(chunk)})
        conn.execute(delete(L).where(L.c.id.in_(chunk)))
    return conversations


def erase_member(ledger, address: str) -> tuple[int, int]:
    """A member's erasure request (ledger.privacy.retention.erase_member): their listings with
    everything of theirs, and every conversation they answered (its messages, arrangements and
    notes). The payment requests and payments stay (the ledger's), as in retention; closed
    months' statistics are frozen first, so no released figure changes. Returns (listings,
    conversations) erased."""
    sqlite = ledger.engine.dialect.name == "sqlite"
    with ledger.transaction() as conn:
        freeze_closed_months(conn, ledger.clock())
        found = conn.execute(select(L.c.id, L.c.text_rowid).where(L.c.author == address)).all()
        conversations = _erase_listings(conn, found, sqlite)
        answered = select(C.c.id).where(C.c.responder == address)
        arr = select(A.c.id).where(A.c.conversation_id.in_(answered))
        conn.execute(delete(TH).where(TH.c.arrangement_id.in_(arr)))
        conn.execute(delete(A).where(A.c.conversation_id.in_(answered)))
        conn.execute(delete(MS).where(MS.c.conversation_id.in_(answered)))
        conversations += conn.execute(delete(C).where(C.c.responder == address)).rowcount
    return len(found), conversations


def retention_days(policy) -> int:
    """The board's period: the longest of its items' (a listing goes with its conversations)."""
    return max(policy.retention_days(i) for i in ("listings", "listing_moderation", "exchange_messages",
                                                 "exchange_arrangements"))


def erase_expired(ledger, policy, now_ms: int) -> int:
    """For ledger.privacy.retention.run: listings (and everything of theirs) past the period."""
    return erase_closed(ledger, period_days=retention_days(policy), now_ms=now_ms)


# statistics: ledger/exchange_stats.py (hours_by_category, frozen per closed month), re-exported


__all__ = [
    "EXCHANGE_TABLES",
    "Arrangement",
    "Conversation",
    "Exchange",
    "Listing",
    "Message",
    "Moderation",
    "erase_closed",
    "erase_expired",
    "erase_member",
    "hours_by_category",
    "load_config",
]
