"""The exchange board's service (ledger/exchange.py) on SQLite and PostgreSQL: listing rules,
expiry, search, who may read what, arrangements paid through a linked request, retention,
statistics. docs/exchange.md."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from ledger import signing
from ledger.core import errors as E
from ledger.core.exchange import DAY_MS, ExchangeConfig, parse_config
from ledger.exchange import Exchange, erase_closed, hours_by_category
from ledger.privacy import retention
from ledger.privacy.policy import load_policy
from ledger.privacy.stats import statistics
from ledger.requests import PaymentRequests
from ledger.store.exchange_tables import (
    FTS_TABLE,
    arrangements,
    conversations,
    listings,
    messages,
    thanks,
)
from ledger.store.request_tables import payment_requests


class Clock:
    def __init__(self, ledger):
        self.now = ledger.clock()

    def __call__(self):
        return self.now


@pytest.fixture
def board(community):
    c = community
    for name in ("ana", "bea", "cai"):
        c.member(name)
    c.member("shop", role="shop")
    c.clock = Clock(c.ledger)
    c.ledger.clock = c.clock
    c.x = Exchange(c.ledger)
    return c


def offer(c, who="ana", **kw):
    fields = {"kind": "offer", "title": "Elderly care, weekday mornings", "description": "Company and walks",
              "category": "elderly_care", "area": "centro", "currency": "HOUR", "priceUnit": "hour", "price": 60}
    fields.update(kw)
    c.clock.now += 1
    return c.x.post(c.addr(who), "member", fields)


def need(c, who="bea", **kw):
    return offer(c, who, **{"kind": "need", "title": "Help after surgery", "description": "3 h, 12-14 May",
                            "category": "errands", **kw})


def count(c, table):
    with c.ledger.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def titles(page):
    return [i.title for i in page[0]]


# -- listings --------------------------------------------------------------------------------
def test_post_defaults_and_expiry(board):
    c = board
    o = offer(c)
    assert (o.status, o.public, o.price_unit, o.price, o.author) == ("active", True, "hour", 60, c.addr("ana"))
    assert o.expires_at - o.created_at == 30 * DAY_MS
    n = need(c)
    assert n.expires_at - n.created_at == 7 * DAY_MS
    assert offer(c, expiresInDays=90).expires_at - c.clock.now == 90 * DAY_MS
    agree = offer(c, priceUnit="agree", price=None, slots=[{"day": "mon", "from": "09:00", "to": "12:00"}])
    assert agree.price is None and agree.slots == "mon 09:00-12:00"


BAD_LISTINGS = [
    {"expiresInDays": 91}, {"expiresInDays": 0}, {"expiresInDays": 1.5}, {"expiresInDays": True},
    {"kind": "gift"}, {"category": "gardening"}, {"area": "40.41,-3.70"}, {"currency": "EUR"},
    {"priceUnit": "month"}, {"price": None}, {"price": 0}, {"price": -5}, {"price": 2**53}, {"price": "60"},
    {"priceUnit": "agree", "price": 60}, {"title": ""}, {"title": "   "}, {"title": "x" * 121},
    {"title": "care\x1b[2J"}, {"title": "care\u202e"}, {"description": "a\rb"}, {"description": "x" * 2001},
    {"availability": "mornings\n"}, {"slots": [{"day": "mon", "from": "12:00", "to": "09:00"}]},
    {"slots": [{"day": "monday", "from": "09:00", "to": "12:00"}]}, {"slots": [{"day": "mon", "from": "9h"}]},
    {"rating": 5},
]


def test_bad_listings_are_refused_and_nothing_is_written(board):
    c = board
    before = c.snapshot()
    for change in BAD_LISTINGS:
        with pytest.raises(E.InvalidInput):
            offer(c, **change)
    assert c.snapshot() == before


def test_text_rule_allows_line_feeds_in_descriptions_and_emoji(board):
    o = offer(board, description="Line one\nLine two 👩‍👧", title="Cuidado de mayores ☕")
    assert o.description == "Line one\nLine two 👩‍👧"


def test_only_members_and_shops_post(board):
    c = board
    with pytest.raises(E.NotAuthorised):
        c.x.post(c.treasurer, "treasurer", {"kind": "offer"})
    shop = c.x.post(c.addr("shop"), "shop", {"kind": "offer", "title": "Bread", "category": "goods", "area": "sur",
                                             "currency": "CRED", "priceUnit": "item", "price": 250})
    assert shop.currency == "CRED" and shop.price_unit == "item"


def test_edit_pause_resume_close(board):
    c = board
    o = offer(c)
    c.clock.now += 10
    e = c.x.edit(o.id, c.addr("ana"), {"title": "Evening care", "priceUnit": "agree"})
    assert (e.title, e.price_unit, e.price, e.created_at, e.updated_at) == \
        ("Evening care", "agree", None, o.created_at, c.clock.now)  # editing never moves it up
    with pytest.raises(E.InvalidInput):
        c.x.edit(o.id, c.addr("ana"), {"kind": "need"})
    with pytest.raises(E.UnknownListing):
        c.x.edit(o.id, c.addr("bea"), {"title": "mine now"})
    assert c.x.act(o.id, c.addr("ana"), "pause").status == "paused"
    with pytest.raises(E.InvalidTransition):
        c.x.act(o.id, c.addr("ana"), "pause")
    assert c.x.act(o.id, c.addr("ana"), "resume").status == "active"
    with pytest.raises(E.UnknownListing):
        c.x.act(o.id, c.addr("bea"), "close")
    assert c.x.act(o.id, c.addr("ana"), "close").status == "closed"
    for action in ("close", "resume", "pause"):
        with pytest.raises(E.InvalidTransition):
            c.x.act(o.id, c.addr("ana"), action)
    with pytest.raises(E.InvalidTransition):
        c.x.edit(o.id, c.addr("ana"), {"title": "again"})


def test_expired_listing_leaves_search_and_can_be_extended(board):
    c = board
    n = need(c)
    assert titles(c.x.search()) == ["Help after surgery"]
    c.clock.now = n.expires_at
    assert c.x.search() == ([], None, c.clock.now // DAY_MS)
    assert c.x.get(n.id, c.addr("bea"), "member").status == "expired"
    with pytest.raises(E.UnknownListing):
        c.x.get(n.id, c.addr("ana"), "member")
    with pytest.raises(E.UnknownListing):
        c.x.answer(n.id, c.addr("ana"), "member", "I can help")
    assert [i.id for i in c.x.mine(c.addr("bea"), status="expired")[0]] == [n.id]
    c.x.edit(n.id, c.addr("bea"), {"expiresInDays": 3})
    assert titles(c.x.search()) == ["Help after surgery"]


# -- search ----------------------------------------------------------------------------------
def test_search_filters_and_full_text(board):
    c = board
    offer(c, title="Garden repairs", description="Fences and doors", category="repairs", area="norte")
    offer(c, "bea", title="Cooking lessons", description="Vegetarian cooking, Sunday", category="teaching",
          currency="CRED", price=1500)
    need(c, "cai", title="Someone to cook", description="for my father, weekday lunch", category="cooking")
    offer(c, "shop", title="Bread", description="Sourdough loaves", category="goods", area="sur",
          currency="CRED", priceUnit="item", price=300)
    assert len(c.x.search()[0]) == 4
    assert titles(c.x.search(kind="need")) == ["Someone to cook"]
    assert titles(c.x.search(category="repairs")) == ["Garden repairs"]
    assert titles(c.x.search(area="sur")) == ["Bread"]
    assert titles(c.x.search(currency="CRED")) == ["Bread", "Cooking lessons"]
    assert titles(c.x.search(q="cooking")) == ["Cooking lessons"]           # whole words, no stemming
    assert titles(c.x.search(q="COOKING sunday")) == ["Cooking lessons"]    # case-folded, every word
    assert titles(c.x.search(q="cooking monday")) == []
    assert titles(c.x.search(q="fences")) == ["Garden repairs"]             # the description counts
    assert titles(c.x.search(q="father, (lunch)")) == ["Someone to cook"]   # punctuation only separates
    assert titles(c.x.search(q="fen")) == []                                # no partial words
    assert titles(c.x.search(q='" OR 1=1 --')) == []                        # only words reach the index
    assert titles(c.x.search(q="bread", kind="need")) == []
    with pytest.raises(E.InvalidInput):
        c.x.search(q="?!")
    with pytest.raises(E.InvalidInput):
        c.x.search(order="popular")


def test_search_follows_edits_and_forgets_closed(board):
    c = board
    o = offer(c, title="Dog walking")
    assert titles(c.x.search(q="dog"))
    c.x.edit(o.id, c.addr("ana"), {"title": "Cat sitting"})
    assert titles(c.x.search(q="dog")) == [] and titles(c.x.search(q="cat")) == ["Cat sitting"]
    c.x.act(o.id, c.addr("ana"), "pause")
    assert titles(c.x.search(q="cat")) == []
    c.x.act(o.id, c.addr("ana"), "close")
    assert titles(c.x.search()) == []


def test_pages_never_repeat_or_skip(board):
    c = board
    made = [offer(c, title=f"Listing {i}").id for i in range(23)]
    for order in ("newest", "shuffle"):
        seen, cursor = [], None
        while True:
            page, cursor, _ = c.x.search(order=order, limit=5, cursor=cursor)
            seen += [i.id for i in page]
            if cursor is None:
                break
        assert sorted(seen) == sorted(made) and len(seen) == len(made)
        if order == "newest":
            assert seen == made[::-1]
    with pytest.raises(E.InvalidInput):
        c.x.search(cursor="not-a-cursor")


# -- moderation ------------------------------------------------------------------------------
def test_a_treasurer_hides_with_a_reason_the_author_sees(board):
    c = board
    o = offer(c)
    with pytest.raises(E.NotAuthorised):
        c.x.moderate(o.id, c.addr("bea"), "member", "hide", "I do not like it")
    with pytest.raises(E.InvalidInput):
        c.x.moderate(o.id, c.treasurer, "treasurer", "hide", "")
    h = c.x.moderate(o.id, c.treasurer, "treasurer", "hide", "a phone number of someone else")
    assert not h.public and h.hidden_reason == "a phone number of someone else"
    assert c.x.search()[0] == []
    with pytest.raises(E.UnknownListing):
        c.x.get(o.id, c.addr("bea"), "member")
    with pytest.raises(E.UnknownListing):
        c.x.answer(o.id, c.addr("bea"), "member", "hi")
    mine = c.x.get(o.id, c.addr("ana"), "member")
    assert mine.hidden_reason == "a phone number of someone else"
    with pytest.raises(E.InvalidTransition):
        c.x.moderate(o.id, c.treasurer, "treasurer", "hide", "again")
    c.x.moderate(o.id, c.treasurer, "treasurer", "unhide", "fixed by the author")
    log = c.x.moderation_log(o.id, c.addr("ana"), "member")
    assert [(m.action, m.moderator, m.reason) for m in log] == [
        ("hide", c.treasurer, "a phone number of someone else"), ("unhide", c.treasurer, "fixed by the author")]
    with pytest.raises(E.UnknownListing):
        c.x.moderation_log(o.id, c.addr("bea"), "member")
    assert titles(c.x.search()) == [o.title]


# -- conversations and arrangements ------------------------------------------------------------
def test_only_the_two_parties_read_a_conversation(board):
    c = board
    n = need(c)
    conv, created = c.x.answer(n.id, c.addr("ana"), "member", "I can help, call me on 600 000 000")
    again, created_again = c.x.answer(n.id, c.addr("ana"), "member", "Also on weekends")
    assert created and not created_again and again.id == conv.id
    with pytest.raises(E.InvalidInput):
        c.x.answer(n.id, c.addr("bea"), "member", "my own")
    c.x.send(conv.id, c.addr("bea"), "Thank you! Tuesday?")
    page, _ = c.x.messages(conv.id, c.addr("bea"))
    assert [(m.sender, m.body) for m in page] == [
        (c.addr("ana"), "I can help, call me on 600 000 000"), (c.addr("ana"), "Also on weekends"),
        (c.addr("bea"), "Thank you! Tuesday?")]
    for outsider in (c.addr("cai"), c.treasurer):
        for read in (lambda who: c.x.conversation(conv.id, who), lambda who: c.x.messages(conv.id, who),
                     lambda who: c.x.send(conv.id, who, "hello")):
            with pytest.raises(E.UnknownConversation):
                read(outsider)
        assert c.x.conversations(outsider) == ([], None)
    assert [x.id for x in c.x.conversations(c.addr("bea"))[0]] == [conv.id]
    with pytest.raises(E.InvalidInput):
        c.x.send(conv.id, c.addr("bea"), "bell\x07")


def pay(c, request, payer):
    sub = signing.transfer(c.keys[payer], c.domain, payee=request.payee, currency=request.currency,
                           amount=request.amount, request_id=bytes.fromhex(request.id[2:]))
    return PaymentRequests(c.ledger).pay(request.id, sub)


def arrange(c, *, listing=None, helper="ana", amount=180, currency="HOUR", **kw):
    n = listing or need(c)
    conv, _ = c.x.answer(n.id, c.addr(helper), "member", "I can help")
    a = c.x.propose(conv.id, c.addr(helper), {"what": "Shopping and cooking", "when": "12-14 May",
                                              "currency": currency, "amount": amount, **kw})
    return n, conv, a


def test_arrangement_from_proposal_to_payment(board):
    c = board
    _, _, a = arrange(c)
    assert (a.status, a.provider, a.receiver, a.proposer, a.minutes) == \
        ("proposed", c.addr("ana"), c.addr("bea"), c.addr("ana"), 180)  # on a need the helper provides
    with pytest.raises(E.InvalidTransition):
        c.x.accept(a.id, c.addr("ana"))  # the proposer does not accept their own proposal
    with pytest.raises(E.UnknownArrangement):
        c.x.accept(a.id, c.addr("cai"))
    with pytest.raises(E.InvalidTransition):
        c.x.request_payment(a.id, c.addr("ana"))  # not accepted yet
    assert c.x.accept(a.id, c.addr("bea")).status == "accepted"
    with pytest.raises(E.InvalidTransition):
        c.x.request_payment(a.id, c.addr("bea"))  # the receiver does not bill
    before = c.balance("ana")
    a2, req = c.x.request_payment(a.id, c.addr("ana"), memo="12-14 May")
    assert (a2.status, a2.request_id, req.payer, req.payee, req.amount, req.currency) == \
        ("payment_requested", req.id, c.addr("bea"), c.addr("ana"), 180, "HOUR")
    with pytest.raises(E.InvalidTransition):
        c.x.request_payment(a.id, c.addr("ana"))  # one open request at a time
    pay(c, req, "bea")
    assert c.balance("ana") == before + 180
    assert c.x.arrangement(a.id, c.addr("bea")).status == "paid"
    with pytest.raises(E.InvalidTransition):
        c.x.cancel(a.id, c.addr("bea"))
    assert [x.id for x in c.x.arrangements(c.addr("ana"), status="paid")[0]] == [a.id]
    assert c.x.arrangements(c.addr("ana"), status="proposed") == ([], None)


def test_a_declined_request_returns_the_arrangement_to_accepted(board):
    c = board
    _, _, a = arrange(c, currency="CRED", amount=2500, minutes=120)
    c.x.accept(a.id, c.addr("bea"))
    _, req = c.x.request_payment(a.id, c.addr("ana"))
    PaymentRequests(c.ledger).decline(req.id, by=c.addr("bea"))
    assert c.x.arrangement(a.id, c.addr("ana")).status == "accepted"
    _, again = c.x.request_payment(a.id, c.addr("ana"))
    assert again.id != req.id and c.x.arrangement(a.id, c.addr("ana")).request_id == again.id


def test_offers_are_provided_by_their_author_and_cancel_needs_no_reason(board):
    c = board
    o = offer(c, "ana")
    _, _, a = arrange(c, listing=o, helper="bea")
    assert (a.provider, a.receiver) == (c.addr("ana"), c.addr("bea"))
    assert c.x.cancel(a.id, c.addr("ana")).status == "cancelled"
    with pytest.raises(E.InvalidTransition):
        c.x.accept(a.id, c.addr("ana"))


def test_thank_you_notes_are_seen_by_their_recipient_only(board):
    c = board
    _, _, a = arrange(c)
    with pytest.raises(E.InvalidTransition):
        c.x.thank(a.id, c.addr("bea"), "thanks")  # not accepted yet
    c.x.accept(a.id, c.addr("bea"))
    c.x.thank(a.id, c.addr("bea"), "Thank you, it made my week")
    with pytest.raises(E.InvalidTransition):
        c.x.thank(a.id, c.addr("bea"), "and again")
    assert c.x.arrangement(a.id, c.addr("ana")).thanks_received == "Thank you, it made my week"
    assert c.x.arrangement(a.id, c.addr("bea")).thanks_received is None
    with pytest.raises(E.UnknownArrangement):
        c.x.thank(a.id, c.addr("cai"), "me too")


# -- retention and statistics ----------------------------------------------------------------
def test_retention_erases_the_board_a_period_after_closing_but_keeps_the_payment(board):
    c = board
    n, _, a = arrange(c)
    c.x.accept(a.id, c.addr("bea"))
    _, req = c.x.request_payment(a.id, c.addr("ana"))
    pay(c, req, "bea")
    c.x.thank(a.id, c.addr("bea"), "thanks")
    c.x.moderate(n.id, c.treasurer, "treasurer", "hide", "test")
    keep = offer(c, "cai", expiresInDays=90)
    c.x.act(n.id, c.addr("bea"), "close")
    closed_at = c.clock.now
    policy = load_policy()
    c.clock.now = closed_at + 90 * DAY_MS - 1
    assert retention.run(c.ledger, policy).exchange_listings == 0
    c.clock.now = closed_at + 90 * DAY_MS + 1
    assert retention.run(c.ledger, policy).exchange_listings == 1
    for table in (conversations, messages, arrangements, thanks):
        assert count(c, table) == 0
    assert count(c, listings) == 1 and c.x.get(keep.id, c.addr("cai"), "member").id == keep.id
    assert count(c, payment_requests) == 1 and PaymentRequests(c.ledger).get(req.id).status == "paid"
    if c.ledger.engine.dialect.name == "sqlite":
        with c.ledger.engine.connect() as conn:
            assert conn.execute(text(f"SELECT listing_id FROM {FTS_TABLE}")).scalars().all() == [keep.id]
    assert c.ledger.verify().ok


def test_an_unclosed_listing_is_erased_a_period_after_it_expired(board):
    c = board
    n = need(c)
    c.x.answer(n.id, c.addr("ana"), "member", "hello")
    assert erase_closed(c.ledger, period_days=90, now_ms=n.expires_at + 90 * DAY_MS - 1) == 0
    assert erase_closed(c.ledger, period_days=90, now_ms=n.expires_at + 90 * DAY_MS + 1) == 1
    assert count(c, messages) == 0


def test_hours_by_category_are_k_anonymous(board):
    c = board
    helpers = [c.member(f"h{i}") for i in range(3)]
    receivers = [c.member(f"r{i}") for i in range(3)]
    for i in range(3):
        n = need(c, f"r{i}", category="errands")
        _, _, a = arrange(c, listing=n, helper=f"h{i}", amount=60 + i)
        c.x.accept(a.id, receivers[i])
        _, req = c.x.request_payment(a.id, helpers[i])
        pay(c, req, f"r{i}")
    month_after = c.clock.now + 40 * DAY_MS
    cells = hours_by_category(c.ledger, k=3, before_ms=month_after)
    assert [(x["category"], x["minutes"], x["arrangements"], x["providers"]) for x in cells] == [("errands", 183, 3, 3)]
    assert hours_by_category(c.ledger, k=4, before_ms=month_after)[0] == {
        "month": cells[0]["month"], "category": "errands", "suppressed": True}
    assert hours_by_category(c.ledger, k=3, before_ms=c.clock.now - 40 * DAY_MS) == []
    # /v1/stats carries it (the current month is still open: not released yet)
    assert statistics(c.ledger, k=5)["hoursByCategory"] == []


def test_configuration_is_checked():
    config = parse_config({"categories": [{"id": "care", "label": "Care"}], "areas": [{"id": "a1", "label": "A"}]})
    assert config == ExchangeConfig((("care", "Care"),), (("a1", "A"),))
    for bad in ({}, {"categories": [], "areas": []}, {"categories": [{"id": "Care!", "label": "x"}], "areas": []},
                {"categories": [{"id": "a", "label": "x"}, {"id": "a", "label": "y"}], "areas": [{"id": "b", "label": "b"}]},
                {"categories": [{"id": "a", "label": "x\x1b"}], "areas": [{"id": "b", "label": "b"}]}):
        with pytest.raises(E.InvalidInput):
            parse_config(bad)
