"""The exchange board's rules (docs/exchange.md), pure: what a listing may hold, when it
expires, which state changes are allowed, and the daily shuffle.

There is no score anywhere here on purpose: the only orders a listing can have are its
creation time and `shuffle_rank(day, key)`, a function of the UTC day and the listing's own
random key and of nothing a member does (tests/test_exchange_order.py holds this)."""
from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from .amounts import MAX_AMOUNT
from .errors import InvalidAmount, InvalidInput, InvalidTransition
from .text import check_user_text, has_visible

DAY_MS = 86_400_000
KINDS = ("offer", "need")
PRICE_UNITS = ("hour", "item", "agree")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_EXPIRY_DAYS = {"offer": 30, "need": 7}
MAX_EXPIRY_DAYS = 90
MIN_EXPIRY_DAYS = 1
MAX_TITLE, MAX_DESCRIPTION, MAX_AVAILABILITY = 120, 2000, 200
MAX_MESSAGE, MAX_REASON, MAX_THANKS, MAX_ARRANGEMENT_TEXT = 2000, 500, 500, 300
MAX_SLOTS = 14
# climbing the order by re-posting (docs/exchange.md): a member's new listing of a kind and
# category of which they closed (or let expire) one posted within REPOST_DAYS takes that
# listing's place in both orders (its creation time and shuffle key); the API also limits new
# listings per member and day
REPOST_DAYS = 30
MAX_OPEN_PROPOSALS = 10  # arrangements `proposed` at once in one conversation: no flooding a member
LISTING_FIELDS = ("kind", "title", "description", "category", "area", "currency", "priceUnit", "price",
                  "availability", "slots", "expiresInDays")

_ID = re.compile(r"[a-z0-9_]{1,40}", re.ASCII)
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)
_OBJECT_ID = re.compile(r"[0-9a-f]{32}", re.ASCII)


# -- configuration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ExchangeConfig:
    """The cooperative's lists: (id, label) pairs, in the order they are shown."""
    categories: tuple[tuple[str, str], ...]
    areas: tuple[tuple[str, str], ...]

    def category_label(self, cid: str) -> str:
        return dict(self.categories).get(cid, cid)  # a removed category still shows its id

    def area_label(self, aid: str) -> str:
        return dict(self.areas).get(aid, aid)


def parse_config(doc: object) -> ExchangeConfig:
    """{"categories": [{"id", "label"}, ...], "areas": [...]}: ids `[a-z0-9_]{1,40}`, labels
    pass the text rule, no duplicates, at least one of each."""
    if not isinstance(doc, Mapping) or set(doc) - {"categories", "areas", "$comment"}:
        raise InvalidInput("the exchange configuration is an object with `categories` and `areas`")
    lists = []
    for name in ("categories", "areas"):
        items = doc.get(name)
        if not isinstance(items, list) or not items:
            raise InvalidInput(f"the exchange configuration needs a non-empty list `{name}`")
        pairs = []
        for item in items:
            if not isinstance(item, Mapping) or set(item) != {"id", "label"} or not isinstance(item["id"], str) \
                    or not _ID.fullmatch(item["id"]):
                raise InvalidInput(f"each of `{name}` is {{\"id\": \"[a-z0-9_]{{1,40}}\", \"label\": text}}")
            label = check_user_text(item["label"], field=f"{name} label", max_chars=80)
            if not label.strip():
                raise InvalidInput(f"{name} {item['id']} has an empty label")
            pairs.append((item["id"], label))
        ids = [i for i, _ in pairs]
        if len(set(ids)) != len(ids):
            raise InvalidInput(f"`{name}` names an id twice")
        lists.append(tuple(pairs))
    return ExchangeConfig(*lists)


# -- listings --------------------------------------------------------------------------------


def search_text(value: str) -> str:
    """The form full-text search sees, of a listing's text and of a query alike: Unicode NFC,
    case-folded (Greek final sigma, German sharp s, dotted capital I included), then its words
    (letters and digits) joined by single spaces. Both databases' tokenisers then only split on
    spaces, so `ana@example.org 3.5` is the words ana, example, org, 3, 5 on SQLite and
    PostgreSQL alike, and NFD and NFC spellings meet."""
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).casefold())
    folded = folded.replace("i\u0307", "i")  # dotted capital I folds to i + dot: istanbul finds İSTANBUL
    words, word = [], []
    for ch in folded:  # a combining mark belongs to its word (Devanagari vowel signs, ...)
        if ch.isalnum() or (word and unicodedata.category(ch).startswith("M")):
            word.append(ch)
        elif word:
            words.append("".join(word))
            word = []
    if word:
        words.append("".join(word))
    return " ".join(words)


def check_object_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not _OBJECT_ID.fullmatch(value):
        raise InvalidInput(f"a {what} id is 32 lower-case hex characters")
    return value


def _text(value: object, field: str, max_chars: int, *, required: bool, newlines: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{field} is required")
        return None
    text = check_user_text(value, field=field, max_chars=max_chars, allow_newlines=newlines)
    if required and not has_visible(text):  # spaces or marks alone look empty
        raise InvalidInput(f"{field} is required")
    return text


def parse_slots(slots: object) -> str | None:
    """[{"day": "mon", "from": "09:00", "to": "12:00"}, ...] -> "mon 09:00-12:00;..." (stored form)."""
    if slots is None:
        return None
    if not isinstance(slots, list) or len(slots) > MAX_SLOTS:
        raise InvalidInput(f"slots is a list of at most {MAX_SLOTS} weekday/time slots")
    out = []
    for s in slots:
        if not isinstance(s, Mapping) or set(s) != {"day", "from", "to"}:
            raise InvalidInput('a slot is {"day": "mon".."sun", "from": "HH:MM", "to": "HH:MM"}')
        day, start, end = s["day"], s["from"], s["to"]
        if day not in WEEKDAYS:
            raise InvalidInput(f"a slot's day is one of {', '.join(WEEKDAYS)}")
        if not (isinstance(start, str) and _TIME.fullmatch(start) and isinstance(end, str) and _TIME.fullmatch(end)):
            raise InvalidInput("a slot's times are HH:MM (24 h)")
        if end <= start:
            raise InvalidInput("a slot ends after it starts")
        out.append(f"{day} {start}-{end}")
    return ";".join(out) or None


def format_slots(stored: str | None) -> list[dict]:
    if not stored:
        return []
    out = []
    for part in stored.split(";"):
        day, _, times = part.partition(" ")
        start, _, end = times.partition("-")
        out.append({"day": day, "from": start, "to": end})
    return out


def expiry_at(kind: str, now_ms: int, days: object = None) -> int:
    """When a listing posted (or extended) at `now_ms` expires: offers 30 days by default,
    needs 7, never more than 90 days ahead or less than one."""
    if days is None:
        days = DEFAULT_EXPIRY_DAYS[kind]
    if isinstance(days, bool) or not isinstance(days, int) or not MIN_EXPIRY_DAYS <= days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(f"expiresInDays is a whole number of days from {MIN_EXPIRY_DAYS} to {MAX_EXPIRY_DAYS}")
    return now_ms + days * DAY_MS


def check_price(unit: object, price: object) -> tuple[str, int | None]:
    if unit not in PRICE_UNITS:
        raise InvalidInput(f"priceUnit is one of {', '.join(PRICE_UNITS)}")
    if unit == "agree":
        if price is not None:
            raise InvalidInput('a price "to agree" has no price: send price null')
        return unit, None
    return unit, check_positive_amount(price, "price")


def check_positive_amount(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} is an integer in the currency's minor unit (HOUR: minutes, CRED: cents)")
    if not 0 < value <= MAX_AMOUNT:
        raise InvalidAmount(f"{field} must be between 1 and {MAX_AMOUNT}")
    return value


def check_listing(fields: Mapping, config: ExchangeConfig, currencies: set[str], now_ms: int, *,
                  current: Mapping | None = None) -> dict:
    """The column values of a new listing (`current` None) or of the changes to one (`current`:
    its stored columns; only the fields given change). Refuses unknown fields and bad values
    with InvalidInput, naming the field."""
    unknown = set(fields) - set(LISTING_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown listing field(s): {', '.join(sorted(unknown))}")
    new = current is None
    if not new and "kind" in fields and fields["kind"] != current["kind"]:
        raise InvalidInput("the kind of a listing cannot change: close it and post a new one")
    out: dict = {}
    if new:
        if fields.get("kind") not in KINDS:
            raise InvalidInput("kind is `offer` or `need`")
        out["kind"] = fields["kind"]
    kind = out.get("kind") or current["kind"]

    def given(name):
        return new or name in fields

    if given("title"):
        out["title"] = _text(fields.get("title"), "title", MAX_TITLE, required=True)
    if given("description"):
        out["description"] = _text(fields.get("description"), "description", MAX_DESCRIPTION,
                                   required=False, newlines=True) or ""
    if given("category"):
        if fields.get("category") not in dict(config.categories):
            raise InvalidInput(f"category is one of {', '.join(c for c, _ in config.categories)}")
        out["category"] = fields["category"]
    if given("area"):
        if fields.get("area") not in dict(config.areas):
            raise InvalidInput(f"area is one of {', '.join(a for a, _ in config.areas)} (a neighbourhood, "
                               "never coordinates)")
        out["area"] = fields["area"]
    if given("currency"):
        if fields.get("currency") not in currencies:
            raise InvalidInput(f"currency is one of {', '.join(sorted(currencies))}")
        out["currency"] = fields["currency"]
    if given("priceUnit") or given("price"):
        unit = fields["priceUnit"] if "priceUnit" in fields else (None if new else current["price_unit"])
        if "price" in fields:
            price = fields["price"]
        else:  # switching to "to agree" drops the old price; otherwise the stored one stays
            price = None if new or unit == "agree" else current["price"]
        out["price_unit"], out["price"] = check_price(unit, price)
    if given("availability"):
        out["availability"] = _text(fields.get("availability"), "availability", MAX_AVAILABILITY, required=False)
    if given("slots"):
        out["slots"] = parse_slots(fields.get("slots"))
    if new or "expiresInDays" in fields:
        out["expires_at"] = expiry_at(kind, now_ms, fields.get("expiresInDays"))
        # a listing lives at most MAX_EXPIRY_DAYS from its creation: extending it for ever would
        # keep the answering members' messages for ever (they go with the listing)
        if not new and out["expires_at"] > max(current["expires_at"], current["created_at"] + MAX_EXPIRY_DAYS * DAY_MS):
            raise InvalidInput(f"a listing lives at most {MAX_EXPIRY_DAYS} days from its creation: "
                               "post a new one to go on")
    return out


# listing status: (status, action) -> new status; `closed` is final
LISTING_ACTIONS = {("active", "pause"): "paused", ("paused", "resume"): "active",
                   ("active", "close"): "closed", ("paused", "close"): "closed"}


def listing_transition(status: str, action: str, *, expires_at: int, now_ms: int) -> str:
    if action == "resume" and expires_at <= now_ms:
        raise InvalidTransition("the listing has expired: extend it (expiresInDays) before resuming it")
    new = LISTING_ACTIONS.get((status, action))
    if new is None:
        raise InvalidTransition(f"a listing that is {status} cannot be {action}d" if action != "close" else
                                "the listing is already closed")
    return new


def listing_status(status: str, expires_at: int, now_ms: int) -> str:
    """What a member is shown: an open listing past its expiry is `expired`."""
    return "expired" if status != "closed" and expires_at <= now_ms else status


def is_public(status: str, hidden_at: int | None, expires_at: int, now_ms: int) -> bool:
    """Visible to every member (in search, answerable): active, not hidden, not expired."""
    return status == "active" and hidden_at is None and expires_at > now_ms


def closed_since(status: str, closed_at: int | None, expires_at: int, now_ms: int) -> int | None:
    """When the listing stopped being open (closed or expired), for retention; None if open."""
    if status == "closed" and closed_at is not None:
        return min(closed_at, expires_at)
    return expires_at if expires_at <= now_ms else None


def check_reason(reason: object) -> str:
    return _text(reason, "reason", MAX_REASON, required=True)


def check_message(text: object) -> str:
    return _text(text, "text", MAX_MESSAGE, required=True, newlines=True)


def check_thanks(text: object) -> str:
    return _text(text, "text", MAX_THANKS, required=True, newlines=True)


# -- arrangements ----------------------------------------------------------------------------
def provider_and_receiver(kind: str, author: str, responder: str) -> tuple[str, str]:
    """Who does the work and who pays: the author of an offer provides, the answering member
    of a need provides."""
    return (author, responder) if kind == "offer" else (responder, author)


MAX_ARRANGEMENT_MINUTES = 7 * 24 * 60  # a week of work: the statistics count these minutes


def check_arrangement(fields: Mapping, currencies: set[str], time_currencies: frozenset[str] = frozenset()) -> dict:
    """An arrangement's columns. Its minutes feed hoursByCategory, so they are bounded (at most
    a week per arrangement) and, in a time currency (HOUR: the minor unit is a minute), they
    are the amount itself: no arrangement can weigh more in the statistics than it pays."""
    unknown = set(fields) - {"what", "when", "minutes", "currency", "amount"}
    if unknown:
        raise InvalidInput(f"unknown arrangement field(s): {', '.join(sorted(unknown))}")
    currency = fields.get("currency")
    if currency not in currencies:
        raise InvalidInput(f"currency is one of {', '.join(sorted(currencies))}")
    amount = check_positive_amount(fields.get("amount"), "amount")
    minutes = fields.get("minutes")
    if minutes is not None:
        minutes = check_positive_amount(minutes, "minutes")
    if currency in time_currencies:
        if minutes is not None and minutes != amount:
            raise InvalidInput(f"in {currency} the minutes are the amount (its minor unit is a minute): "
                               "send minutes equal to the amount, or leave them out")
        minutes = amount
    if minutes is not None and minutes > MAX_ARRANGEMENT_MINUTES:
        raise InvalidInput(f"minutes are at most {MAX_ARRANGEMENT_MINUTES} (a week) per arrangement: "
                           "split longer work into several arrangements")
    return {"what": _text(fields.get("what"), "what", MAX_ARRANGEMENT_TEXT, required=True),
            "when_text": _text(fields.get("when"), "when", MAX_ARRANGEMENT_TEXT, required=False),
            "minutes": minutes, "currency": currency, "amount": amount}


def arrangement_status(stored: str, request_status: str | None) -> str:
    """`stored` is proposed | accepted | cancelled; a linked payment request decides the rest
    (the log says whether it is paid). A declined or expired request leaves it accepted."""
    if stored == "accepted" and request_status == "paid":
        return "paid"
    if stored == "accepted" and request_status == "open":
        return "payment_requested"
    return stored


def check_accept(status: str, proposer: str, by: str) -> None:
    if status != "proposed":
        raise InvalidTransition(f"an arrangement that is {status} cannot be accepted")
    if by == proposer:
        raise InvalidTransition("the other party accepts a proposal, not the one who made it")


def check_cancel(status: str) -> None:
    if status not in ("proposed", "accepted", "payment_requested"):
        raise InvalidTransition(f"an arrangement that is {status} cannot be cancelled")


def check_request_payment(status: str, provider: str, by: str) -> None:
    if by != provider:
        raise InvalidTransition("only the provider (who did the work) asks for the payment")
    if status != "accepted":
        raise InvalidTransition(f"payment is requested for an accepted arrangement (this one is {status})")


def check_thanks_allowed(status: str) -> None:
    if status not in ("accepted", "payment_requested", "paid"):
        raise InvalidTransition("a thank-you note follows an accepted arrangement")


# -- the daily shuffle -----------------------------------------------------------------------
SHUFFLE_PRIME = 2_147_483_647  # 2**31 - 1; keys are below it, so key * mult fits in 62 bits


def day_of(now_ms: int) -> int:
    return now_ms // DAY_MS


def shuffle_params(day: int, secret: bytes = b"") -> tuple[int, int]:
    """(mult, add) of day `day`'s permutation key -> (key * mult + add) mod P, from a keyed hash
    of the day alone: the same for every reader, different every day, chosen by nobody. The
    server passes its secret, so a listing's rank (or its place on a page) tells nobody its key,
    nor where it will stand on any other day."""
    digest = hmac.new(secret, f"ayni-exchange-shuffle:{day}".encode(), hashlib.sha256).digest()
    mult = int.from_bytes(digest[:8], "big") % (SHUFFLE_PRIME - 1) + 1
    add = int.from_bytes(digest[8:16], "big") % SHUFFLE_PRIME
    return mult, add


def shuffle_rank(day: int, key: int, secret: bytes = b"") -> int:
    """A listing's place on day `day` (ascending): hash(seed_day, listing key). The key is
    random at posting and never changes; nothing a member does moves it (a re-post keeps its
    predecessor's key: see REPOST_DAYS)."""
    mult, add = shuffle_params(day, secret)
    return (key * mult + add) % SHUFFLE_PRIME
