"""Nothing ranks anyone: a listing's place depends on its creation time (newest) or on the day
and its own random key (shuffle), and on nothing a member does. docs/exchange.md.

The test makes one member as "successful" as the board allows (many paid arrangements, thank-you
notes, answers, edits) and checks that none of their listings moves, in either order, and that
both orders are exactly the ones computed from time alone or from the pure shuffle function."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from ledger import signing
from ledger.core.exchange import DAY_MS, SHUFFLE_PRIME, day_of, shuffle_rank
from ledger.exchange import Exchange
from ledger.requests import PaymentRequests
from ledger.store.exchange_tables import listings


class Clock:
    def __init__(self, ledger):
        self.now = ledger.clock()

    def __call__(self):
        return self.now


def test_the_shuffle_is_a_daily_permutation_of_the_keys_alone():
    keys = list(range(1, 2000))
    day = 20_400
    ranks = [shuffle_rank(day, k) for k in keys]
    assert len(set(ranks)) == len(keys)  # a permutation: no two listings tie
    assert ranks == [shuffle_rank(day, k) for k in keys]  # the same all day, for every reader
    order = sorted(keys, key=lambda k: shuffle_rank(day, k))
    tomorrow = sorted(keys, key=lambda k: shuffle_rank(day + 1, k))
    assert order != tomorrow and order != keys
    # no listing keeps the top for long: over 30 days the first place goes to many listings
    firsts = {min(keys, key=lambda k: shuffle_rank(d, k)) for d in range(day, day + 30)}
    assert len(firsts) >= 25
    assert all(0 <= r < SHUFFLE_PRIME for r in ranks)


@pytest.fixture
def board(community):
    c = community
    c.clock = Clock(c.ledger)
    c.ledger.clock = c.clock
    c.x = Exchange(c.ledger)
    return c


def post(c, who, title, kind="offer"):
    c.clock.now += 1000
    return c.x.post(c.addr(who), "member", {"kind": kind, "title": title, "description": "", "category": "company",
                                            "area": "centro", "currency": "HOUR", "priceUnit": "hour", "price": 60})


def full_order(c, order, **kw):
    seen, cursor = [], None
    while True:
        page, cursor, day = c.x.search(order=order, limit=4, cursor=cursor, **kw)
        seen += [i.id for i in page]
        if cursor is None:
            return seen, day


def expected(c, order, day):
    with c.ledger.engine.connect() as conn:
        rows = conn.execute(select(listings.c.id, listings.c.created_at, listings.c.shuffle_key)
                            .where(listings.c.status == "active")).all()
    if order == "newest":
        return [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]
    return [r.id for r in sorted(rows, key=lambda r: (shuffle_rank(day, r.shuffle_key), r.id))]


def be_busy(c, star, others, rounds):
    """`star` answers, arranges, is paid and thanked, again and again; edits their listings."""
    for i in range(rounds):
        other = others[i % len(others)]
        n = post(c, other, f"Need {i}", kind="need")
        conv, _ = c.x.answer(n.id, c.addr(star), "member", "I can help")
        a = c.x.propose(conv.id, c.addr(star), {"what": "help", "currency": "HOUR", "amount": 30})
        c.x.accept(a.id, c.addr(other))
        _, req = c.x.request_payment(a.id, c.addr(star))
        sub = signing.transfer(c.keys[other], c.domain, payee=c.addr(star), currency="HOUR", amount=30,
                               request_id=bytes.fromhex(req.id[2:]))
        PaymentRequests(c.ledger).pay(req.id, sub)
        c.x.thank(a.id, c.addr(other), "you are the best")
        c.x.act(n.id, c.addr(other), "close")


def test_a_busy_member_does_not_move_up(board):
    c = board
    names = ["star", "ana", "bea", "cai", "dan"]
    for n in names:
        c.member(n)
    made = {n: [post(c, n, f"{n} offer {i}").id for i in range(3)] for n in names}
    before = {order: full_order(c, order) for order in ("newest", "shuffle")}
    for order, (ids, day) in before.items():
        assert ids == expected(c, order, day)

    be_busy(c, "star", names[1:], rounds=6)
    for lid in made["star"]:
        c.x.edit(lid, c.addr("star"), {"title": "star offer, edited"})  # editing does not bump
    for lid in made["ana"]:
        for who in ("bea", "cai", "dan"):
            c.x.answer(lid, c.addr(who), "member", "interested")  # answers are not popularity

    for order in ("newest", "shuffle"):
        ids, day = full_order(c, order, kind="offer")
        assert ids == before[order][0], f"{order}: the order changed with activity"
        assert ids == expected(c, order, day)


def test_the_shuffle_changes_with_the_day_and_only_with_it(board):
    c = board
    c.member("ana")
    for i in range(12):
        post(c, "ana", f"offer {i}")
    today, day = full_order(c, "shuffle")
    c.clock.now += 3 * 3600 * 1000
    if day_of(c.clock.now) == day:
        assert full_order(c, "shuffle")[0] == today  # the same all day
    c.clock.now = (day + 1) * DAY_MS + 1
    tomorrow, next_day = full_order(c, "shuffle")
    assert next_day == day + 1 and sorted(tomorrow) == sorted(today) and tomorrow != today
    assert tomorrow == expected(c, "shuffle", next_day)


def test_a_shuffled_page_begun_yesterday_ends_in_yesterdays_order(board):
    c = board
    c.member("ana")
    for i in range(9):
        post(c, "ana", f"offer {i}")
    whole, day = full_order(c, "shuffle")
    first, cursor, _ = c.x.search(order="shuffle", limit=4)
    c.clock.now = (day + 1) * DAY_MS + 5  # midnight passes between two pages
    rest = []
    while cursor:
        page, cursor, page_day = c.x.search(order="shuffle", limit=4, cursor=cursor)
        assert page_day == day
        rest += [i.id for i in page]
    assert [i.id for i in first] + rest == whole
