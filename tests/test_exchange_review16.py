"""Review 16 of the exchange board (docs/exchange.md): each defect found, over HTTP on SQLite
and PostgreSQL, with the answer a member now gets."""
from __future__ import annotations

import base64
import threading
import time
import unicodedata

import pytest
from sqlalchemy import select, update

from ledger.core import errors as E
from ledger.core.exchange import shuffle_rank
from ledger.exchange import Exchange, erase_closed, hours_by_category
from ledger.exchange_stats import month_start
from ledger.privacy.stats import statistics
from ledger.requests import PaymentRequests
from ledger.store.exchange_tables import arrangements, listings

from . import test_exchange as TX
from .test_api import Api
from .test_exchange_api import CARE, err, h, post


@pytest.fixture
def api(db_url, tmp_path):
    a = Api(db_url, tmp_path)
    for n in ("ana", "bea", "cai"):
        a.c.member(n)
    yield a
    a.client.close()
    a.c.dispose()


board = TX.board  # the service's fixture: members ana, bea, cai, a shop, a settable clock
HUGE = "9999999999999999999"  # 19 digits, past 2**63 - 1


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_out_of_range_cursors_and_ids_are_4xx_with_a_reason(api):
    o = post(api, "ana", CARE)
    post(api, "ana", {**CARE, "title": "Evening care"})
    conv = api.client.post(f"/v1/listings/{o['id']}/conversations", json={"message": "hi"},
                           headers=h(api, "bea")).json()
    newest = _b64(f"{HUGE}:{'f' * 32}")
    for path, who, purpose in (("/v1/listings", "bea", True), ("/v1/listings/mine", "ana", False),
                               ("/v1/conversations", "bea", False), ("/v1/arrangements", "bea", False)):
        r = api.client.get(path, params={"cursor": newest}, headers=h(api, who, purpose))
        err(r, 400, "invalid_input")
        assert "cursor" in r.json()["error"]["message"]
    shuffle = api.client.get("/v1/listings", params={"order": "shuffle", "cursor": _b64(f"1:{HUGE}:{'f' * 32}")},
                             headers=h(api, "bea", True))
    err(shuffle, 400, "invalid_input")
    # messages.id is a 32-bit INTEGER on PostgreSQL: larger ids are refused, the largest it holds is fine
    msgs = f"/v1/conversations/{conv['id']}/messages"
    err(api.client.get(msgs, params={"after": 2**31}, headers=h(api, "bea")), 422, "invalid_input")
    err(api.client.get(msgs, params={"after": 2**63 - 1}, headers=h(api, "bea")), 422, "invalid_input")
    top = api.client.get(msgs, params={"after": 2**31 - 1}, headers=h(api, "bea"))
    assert top.status_code == 200 and top.json()["items"] == [], top.text
    assert api.client.get("/v1/listings", headers=h(api, "bea", True)).status_code == 200  # still serving


def test_cancel_withdraws_the_linked_request_so_it_cannot_be_paid(board):
    c = board
    _, _, a = TX.arrange(c)
    c.x.accept(a.id, c.addr("bea"))
    _, req = c.x.request_payment(a.id, c.addr("ana"))
    assert c.x.cancel(a.id, c.addr("bea")).status == "cancelled"
    assert PaymentRequests(c.ledger).get(req.id).status == "declined"
    with pytest.raises(E.RequestNotOpen):
        TX.pay(c, req, "bea")
    assert c.x.arrangement(a.id, c.addr("ana")).status == "cancelled"
    with pytest.raises(E.InvalidTransition):  # and nothing to ask for either
        c.x.request_payment(a.id, c.addr("ana"))


def test_accept_losing_to_a_cancel_answers_409_with_the_current_status(board):
    """PostgreSQL (SQLite serialises writers, so there is no race to lose): the cancel holds the
    row while accept reads `proposed`; accept's guarded UPDATE then changes nothing."""
    c = board
    if c.ledger.engine.dialect.name != "postgresql":
        pytest.skip("a concurrent writer needs PostgreSQL")
    _, _, a = TX.arrange(c)
    other = c.ledger.engine.connect()
    tx = other.begin()
    other.execute(update(arrangements).where(arrangements.c.id == a.id).values(status="cancelled"))
    out = []

    def accept():
        try:
            out.append(c.x.accept(a.id, c.addr("bea")))
        except Exception as exc:  # noqa: BLE001 - the answer is what is checked
            out.append(exc)

    t = threading.Thread(target=accept)
    t.start()
    time.sleep(0.5)  # accept has read `proposed` and waits on the row
    tx.commit()
    other.close()
    t.join(10)
    assert isinstance(out[0], E.InvalidTransition), out
    assert "now cancelled" in out[0].message
    assert c.x.arrangement(a.id, c.addr("bea")).status == "cancelled"


def test_minutes_are_the_amount_in_hours_and_bounded_otherwise(board):
    c = board
    _, conv, a = TX.arrange(c, amount=90)
    assert a.minutes == 90
    helper = c.addr("ana")
    with pytest.raises(E.InvalidInput, match="minutes are the amount"):
        c.x.propose(conv.id, helper, {"what": "w", "currency": "HOUR", "amount": 1, "minutes": 10**9})
    with pytest.raises(E.InvalidInput, match="at most 10080"):
        c.x.propose(conv.id, helper, {"what": "w", "currency": "HOUR", "amount": 10081})
    assert c.x.propose(conv.id, helper, {"what": "w", "currency": "HOUR", "amount": 60, "minutes": 60}).minutes == 60
    with pytest.raises(E.InvalidInput, match="at most 10080"):
        c.x.propose(conv.id, helper, {"what": "w", "currency": "CRED", "amount": 1, "minutes": 10**9})
    assert c.x.propose(conv.id, helper, {"what": "w", "currency": "CRED", "amount": 500, "minutes": 10080}).minutes \
        == 10080


def _job(c, provider, receiver, amount=60, category="elderly_care"):
    o = TX.offer(c, provider, category=category)
    _, _, a = TX.arrange(c, listing=o, helper=receiver, amount=amount)
    c.x.accept(a.id, c.addr(provider))
    _, req = c.x.request_payment(a.id, c.addr(provider))
    TX.pay(c, req, receiver)
    return o


RING = ("ana", "bea", "cai", "dan", "eve", "fay")


def _ring(c):
    for name in RING[3:] + ("gus",):
        c.member(name)
    return [_job(c, p, RING[(i + 1) % 6]) for i, p in enumerate(RING)]


def test_a_suppressed_category_hides_its_whole_month(board):
    """Review 16 #1: with errands (one provider) hidden, a released elderly_care cell and the
    month's HOUR total would give errands by subtraction; its only neighbour goes with it."""
    c = board
    _ring(c)
    _job(c, "gus", "ana", amount=240, category="errands")
    c.clock.now += 40 * TX.DAY_MS
    cutoff = month_start(c.clock.now)
    cells = hours_by_category(c.ledger, k=5, before_ms=cutoff)
    assert {x["category"] for x in cells} == {"elderly_care", "errands"}
    assert all(x.get("suppressed") for x in cells), cells
    # without the lone errands job the same month's elderly_care cell would be released
    assert statistics(c.ledger, k=5)["hoursByCategory"] == cells


def test_one_hidden_category_takes_only_its_smallest_neighbour_with_it(board):
    """Recheck N1: hiding the whole month let one lone deal blank every category. One hidden
    cell takes the smallest released cell with it (so neither is a difference), no more."""
    c = board
    _ring(c)  # elderly_care: 6 x 60 min
    for i, p in enumerate(RING):  # cooking: 6 x 30 min, the smaller released cell
        _job(c, p, RING[(i + 2) % 6], amount=30, category="cooking")
    for i, p in enumerate(RING):  # teaching: 6 x 90 min, the largest
        _job(c, p, RING[(i + 3) % 6], amount=90, category="teaching")
    _job(c, "gus", "ana", amount=240, category="errands")  # one provider: hidden
    c.clock.now += 40 * TX.DAY_MS
    cells = {x["category"]: x for x in hours_by_category(c.ledger, k=5, before_ms=month_start(c.clock.now))}
    assert {k for k, x in cells.items() if x.get("suppressed")} == {"errands", "cooking"}
    assert (cells["elderly_care"]["minutes"], cells["teaching"]["minutes"]) == (360, 540)


def test_a_closed_months_figures_never_change_when_retention_erases(board):
    """Review 16 #2: the figures of a closed month are frozen, so erasing one of its
    arrangements (retention) neither lowers them nor reveals that arrangement."""
    c = board
    first = _ring(c)
    c.x.act(first[0].id, c.addr("ana"), "close")
    c.clock.now += 40 * TX.DAY_MS
    cutoff = month_start(c.clock.now)
    released = hours_by_category(c.ledger, k=5, before_ms=cutoff)
    assert [(x["minutes"], x["arrangements"], x["providers"], x["receivers"]) for x in released] == [(360, 6, 6, 6)]
    c.clock.now += 100 * TX.DAY_MS
    assert erase_closed(c.ledger, period_days=90, now_ms=c.clock.now) == 6  # one closed, five expired
    assert hours_by_category(c.ledger, k=5, before_ms=cutoff) == released


def test_retention_freezes_a_closed_month_nobody_read_yet(board):
    c = board
    first = _ring(c)
    c.x.act(first[0].id, c.addr("ana"), "close")
    c.clock.now += 140 * TX.DAY_MS  # no statistics read in between
    assert erase_closed(c.ledger, period_days=90, now_ms=c.clock.now) == 6  # one closed, five expired
    cells = hours_by_category(c.ledger, k=5, before_ms=month_start(c.clock.now))
    assert [(x["minutes"], x["arrangements"]) for x in cells] == [(360, 6)]


def _decode(cursor: str) -> list[str]:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")


def _keys(c) -> dict:
    with c.ledger.engine.connect() as conn:
        return dict(conn.execute(select(listings.c.id, listings.c.shuffle_key)).all())


def test_reposting_keeps_the_old_place_and_no_other_days_order_is_readable(board):
    """Review 16 #4: close-and-repost buys no better place in either order; the shuffle is
    keyed by the server's secret, so a cursor's rank tells no key; only today's (or, for a
    paging begun before midnight, yesterday's) order can be paged."""
    c = board
    first = TX.offer(c, "ana")
    c.x.act(first.id, c.addr("ana"), "close")
    again = TX.offer(c, "ana")
    keys = _keys(c)
    assert again.created_at == first.created_at and keys[again.id] == keys[first.id]
    other = TX.offer(c, "ana", category="errands")  # another category is another listing
    assert other.created_at > first.created_at
    TX.offer(c, "bea")
    TX.offer(c, "cai")
    secret = b"s" * 32
    x = Exchange(c.ledger, shuffle_secret=secret)
    _, cursor, day = x.search(order="shuffle", limit=1)
    _, c_rank, c_id = _decode(cursor)
    key = _keys(c)[c_id]
    assert int(c_rank) == shuffle_rank(day, key, secret) != shuffle_rank(day, key)
    for other_day in (day + 1, day - 2, 0):
        with pytest.raises(E.InvalidInput, match="another day"):
            x.search(order="shuffle", cursor=_b64(f"{other_day}:{c_rank}:{c_id}"))
    c.clock.now = (day + 1) * TX.DAY_MS + 5  # past midnight: the page begun yesterday ends
    rest, _, same_day = x.search(order="shuffle", limit=10, cursor=cursor)
    assert same_day == day and len(rest) == 3


def test_board_writes_are_rate_limited_per_member(api):
    for i in range(10):
        post(api, "ana", {**CARE, "title": f"Care {i}"})
    r = api.client.post("/v1/listings", json=CARE, headers=h(api, "ana"))
    err(r, 429, "rate_limited")
    assert "new listings" in r.json()["error"]["message"]
    post(api, "bea", CARE)  # per member


def test_refused_board_input_does_not_use_up_the_limits(api):
    """Recheck N2: ten refused posts (a web form's mistakes) left no room for the first good one."""
    for _ in range(12):
        err(api.client.post("/v1/listings", json={**CARE, "title": "\u2800" * 5}, headers=h(api, "cai")), 400, "invalid_input")
    post(api, "cai", CARE)


def test_open_proposals_per_conversation_are_bounded_and_arrangements_page_in_sql(board):
    c = board
    _, conv, a = TX.arrange(c)
    for _ in range(9):
        c.x.propose(conv.id, c.addr("ana"), {"what": "w", "currency": "HOUR", "amount": 30})
    with pytest.raises(E.InvalidTransition, match="10 proposals"):
        c.x.propose(conv.id, c.addr("ana"), {"what": "w", "currency": "HOUR", "amount": 30})
    c.x.cancel(a.id, c.addr("bea"))
    kept = c.x.propose(conv.id, c.addr("ana"), {"what": "w", "currency": "HOUR", "amount": 30})
    mine = c.x.arrangements(c.addr("bea"))[0]
    others = [m for m in mine if m.status == "proposed" and m.id != kept.id][:3]  # order among equal times is random
    accepted = [c.x.accept(m.id, c.addr("bea")).id for m in others]
    _, req = c.x.request_payment(accepted[0], c.addr("ana"))
    TX.pay(c, req, "bea")
    c.x.request_payment(accepted[1], c.addr("ana"))
    for status, want in (("paid", accepted[:1]), ("payment_requested", accepted[1:2]), ("accepted", accepted[2:3]),
                         ("cancelled", [a.id])):
        seen, cursor = [], None
        while True:
            page, cursor = c.x.arrangements(c.addr("ana"), status=status, limit=1, cursor=cursor)
            seen += [p.id for p in page]
            if cursor is None:
                break
        assert seen == want, status
    assert kept.id in [p.id for p in c.x.arrangements(c.addr("ana"), status="proposed", limit=500)[0]]


def test_not_yours_and_not_there_read_the_same(api):
    """Review 16 #10: a stranger learns nothing about a paused (or hidden) listing's existence."""
    o = post(api, "ana", CARE)
    assert api.client.post(f"/v1/listings/{o['id']}/pause", headers=h(api, "ana")).status_code == 200
    unknown = "0" * 32

    def answers(lid):
        out = []
        for method, path, body in (("PATCH", "", {"title": "x"}), ("POST", "/pause", None), ("POST", "/close", None),
                                   ("GET", "/moderation", None), ("GET", "", None),
                                   ("POST", "/conversations", {"message": "hi"})):
            r = api.client.request(method, f"/v1/listings/{lid}{path}", json=body, headers=h(api, "bea", True))
            out.append((r.status_code, r.json()["error"]["code"], r.json()["error"]["message"].replace(lid, "ID")))
        return out

    mine, none = answers(o["id"]), answers(unknown)
    assert mine == none and {a[0] for a in mine} == {404}, mine


def test_a_listing_cannot_be_extended_past_90_days_from_its_creation(board):
    c = board
    o = TX.offer(c, "ana")
    c.clock.now += 30 * TX.DAY_MS
    assert c.x.edit(o.id, c.addr("ana"), {"expiresInDays": 60}).expires_at <= o.created_at + 90 * TX.DAY_MS
    with pytest.raises(E.InvalidInput, match="at most 90 days from its creation"):
        c.x.edit(o.id, c.addr("ana"), {"expiresInDays": 61})


def test_a_member_erases_their_board_data_and_the_answer_says_what(api):
    o = post(api, "ana", CARE)
    theirs = post(api, "bea", CARE)
    conv = api.client.post(f"/v1/listings/{o['id']}/conversations", json={"message": "my phone is 555"},
                           headers=h(api, "bea")).json()
    api.client.post(f"/v1/listings/{theirs['id']}/conversations", json={"message": "hi"}, headers=h(api, "cai"))
    err(api.client.post(f"/v1/accounts/{api.c.addr('bea')}/erasure", json={"listings": True},
                        headers=h(api, "bea")), 422, "invalid_input")
    r = api.client.post(f"/v1/accounts/{api.c.addr('bea')}/erasure", json={"memos": False, "profile": False,
                                                                           "board": True}, headers=h(api, "bea"))
    assert r.status_code == 200, r.text
    assert r.json()["erased"]["exchange_listings"] == 1 and r.json()["erased"]["exchange_conversations"] == 2
    err(api.client.get(f"/v1/conversations/{conv['id']}", headers=h(api, "ana")), 404, "unknown_conversation")
    assert api.client.get(f"/v1/listings/{o['id']}", headers=h(api, "ana")).status_code == 200  # ana's stays
    assert api.client.get("/v1/listings/mine", headers=h(api, "bea")).json()["items"] == []
    assert api.client.get("/v1/conversations", headers=h(api, "cai")).json()["items"] == []


def test_board_items_are_declared_under_purposes_that_hold_their_category():
    from ledger.privacy.policy import load_policy
    policy = load_policy()
    cats = {p.id: set(p.categories) for p in policy.purposes}
    board_items = [i for i in policy.items if i.category in ("listings", "exchange")]
    assert len(board_items) == 4
    for item in board_items:
        for purpose in item.purposes:
            assert item.category in cats[purpose], (item.id, purpose)


def test_search_finds_the_same_words_on_both_databases(board):
    """Review 16 #9: NFC/NFD spellings meet, e-mail addresses and decimals split into words,
    Greek and dotted-I case fold, on SQLite and PostgreSQL alike."""
    c = board
    nfd = unicodedata.normalize("NFD", "crème brûlée")
    a = TX.offer(c, "ana", title="Baking", description=f"{nfd} ana@example.org 3.5 ΟΔΌΣ İSTANBUL")
    b = TX.offer(c, "bea", title="Crème brûlée lessons", description="")

    def found(q):
        return {x.id for x in c.x.search(q=q)[0]}

    assert found("crème") == {a.id, b.id} == found(unicodedata.normalize("NFD", "Crème"))
    for q in ("ana", "example", "ana@example.org", "3", "3.5", "οδός", "ΟΔΌΣ", "İstanbul", "i̇stanbul"):
        assert a.id in found(q), q
    assert found("ana@example.com") == set()  # every word must occur
    c.x.edit(b.id, c.addr("bea"), {"title": "Σούπα"})
    assert found("ΣΟΎΠΑ") == {b.id} and found("crème") == {a.id}
    assert a.id in found("istanbul")  # the dotted capital I's dot does not split or hide the word
    # recheck N4: a combining mark belongs to its word (Devanagari vowel signs did split words)
    hindi = TX.offer(c, "bea", title="हिंदी सीखें", description="")
    other = TX.offer(c, "ana", title="हिलना दिन", description="")
    assert hindi.id in found("हिंदी") and other.id not in found("हिंदी")


def test_a_title_of_marks_or_spaces_alone_is_empty():
    """Recheck: a title must show something; combining marks or spaces alone look empty."""
    from ledger.core.exchange import _text
    for blank in ("\u0301\u0301", "   ", "\u3000"):
        with pytest.raises(E.InvalidInput, match="required"):
            _text(blank, "title", 80, required=True)
    assert _text("Té", "title", 80, required=True) == "Té"
