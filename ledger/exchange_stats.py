"""The board's k-anonymous statistics, hoursByCategory (docs/exchange.md, Statistics).

Two rules keep a hidden cell hidden:
- **frozen figures.** A closed (UTC) month's cells are computed once, from the paid
  arrangements still kept, and stored as counts and minutes (no address, no arrangement id:
  ledger.store.exchange_tables.exchange_stats_cells). Retention later erasing arrangements
  cannot change them, so no released figure ever falls and the difference never names an
  erased arrangement. Freezing happens on the first statistics read after a month closes and,
  in any case, before retention erases board data (erase_closed calls freeze_closed_months).
- **never one hidden cell alone.** Where a month has exactly one suppressed category cell, the
  smallest released cell of that month is suppressed with it (complementary suppression, as
  statistical offices do): a hidden cell is never the month's released HOUR total (or the other
  cells) minus the released cells; at most the sum of two hidden cells is. Hiding the whole month
  instead (the first rule) let one lone deal in a rare category blank every category.

Months still open are computed live (only a `before_ms` past the clock asks for them)."""
from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from .core import errors as E
from .store import tables as T
from .store.errors import domain_errors
from .store.exchange_tables import arrangements as A
from .store.exchange_tables import exchange_stats_cells as SC
from .store.exchange_tables import exchange_stats_months as SM
from .store.exchange_tables import listings as L
from .store.request_tables import payment_requests as R
from .store.unit_of_work import PAYS


@dataclass(frozen=True)
class Cell:
    month: str
    category: str
    minutes: int
    arrangements: int
    providers: int
    receivers: int
    top_provider_minutes: int
    top_receiver_minutes: int


def month_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


def month_start(ms: int) -> int:
    d = datetime.fromtimestamp(ms / 1000, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp() * 1000)


def month_end(month: str) -> int:
    year, mon = map(int, month.split("-"))
    return int(datetime(year, mon, monthrange(year, mon)[1], tzinfo=UTC).timestamp() * 1000) + 86_400_000


def _live_cells(conn, *, since: int | None, before: int) -> list[Cell]:
    """Cells computed from the paid arrangements kept, paid in [since, before)."""
    t = T.transfers
    q = select(L.c.category, A.c.provider, A.c.receiver, A.c.minutes, t.c.at) \
        .select_from(A.join(L, L.c.id == A.c.listing_id).join(R, R.c.id == A.c.request_id).join(t, PAYS)) \
        .where(A.c.status == "accepted", A.c.minutes.isnot(None), t.c.at < before)
    if since is not None:
        q = q.where(t.c.at >= since)
    groups: dict[tuple[str, str], list] = {}
    for r in conn.execute(q).all():
        groups.setdefault((month_of(r.at), r.category), []).append(r)
    out = []
    for (month, category), rows in sorted(groups.items()):
        providers: dict[str, int] = {}
        receivers: dict[str, int] = {}
        for r in rows:
            providers[r.provider] = providers.get(r.provider, 0) + r.minutes
            receivers[r.receiver] = receivers.get(r.receiver, 0) + r.minutes
        out.append(Cell(month, category, sum(r.minutes for r in rows), len(rows), len(providers), len(receivers),
                        max(providers.values()), max(receivers.values())))
    return out


def freeze_closed_months(conn, now_ms: int) -> int:
    """Store the cells of every month closed before `now_ms` not stored yet; returns how many
    months were frozen. Months are frozen in order, so only payments after the last frozen
    month are read."""
    last = conn.execute(select(SM.c.month).order_by(SM.c.month.desc()).limit(1)).scalar_one_or_none()
    cells = _live_cells(conn, since=month_end(last) if last else None, before=month_start(now_ms))
    months = sorted({c.month for c in cells})
    if months:
        conn.execute(insert(SM), [{"month": m, "frozen_at": now_ms} for m in months])
        conn.execute(insert(SC), [vars(c) for c in cells])
    return len(months)


def freeze(ledger, now_ms: int | None = None) -> None:
    """freeze_closed_months in its own transaction; a concurrent freezer that won is fine.
    Looks first with a reader, so the write lock is taken only in the rare read that has a
    closed month to store (a statistics read must not queue behind postings for nothing)."""
    now = ledger.clock() if now_ms is None else now_ms
    with domain_errors(), ledger._reader() as conn:
        last = conn.execute(select(SM.c.month).order_by(SM.c.month.desc()).limit(1)).scalar_one_or_none()
        if not _live_cells(conn, since=month_end(last) if last else None, before=month_start(now)):
            return
    try:
        with domain_errors(), ledger.engine.begin() as conn:
            freeze_closed_months(conn, now)
    except IntegrityError:  # another worker froze the same months first: theirs are the same figures
        pass


def _released(cell: Cell, k: int, dominance: float) -> bool:
    return cell.providers >= k and cell.receivers >= k \
        and max(cell.top_provider_minutes, cell.top_receiver_minutes) <= dominance * cell.minutes


def hours_by_category(ledger, *, k: int, before_ms: int, dominance: float = 0.5) -> list[dict]:
    """Minutes of paid arrangements per (UTC month of the payment, category), for months
    before `before_ms`. A cell needs at least k providers and k receivers and nobody holding
    more than `dominance` of its minutes; a month never has exactly one hidden cell (its smallest
    released cell joins it). Closed months are read from their frozen figures (see the module docstring)."""
    now = ledger.clock()
    try:
        freeze(ledger, now)
    except (E.StoreUnavailable, E.StoreConflict):
        pass  # busy writers: the months not frozen yet are computed live below, the same figures
    with domain_errors(), ledger._reader() as conn:
        frozen = conn.execute(select(SC).order_by(SC.c.month, SC.c.category)).all()
        last = conn.execute(select(SM.c.month).order_by(SM.c.month.desc()).limit(1)).scalar_one_or_none()
        cells = [Cell(**r._mapping) for r in frozen if month_end(r.month) <= before_ms]
        cells += _live_cells(conn, since=month_end(last) if last else None, before=before_ms)
    by_month: dict[str, list[Cell]] = {}
    for cell in cells:
        by_month.setdefault(cell.month, []).append(cell)
    out = []
    for month, group in sorted(by_month.items()):
        hidden = {c.category for c in group if not _released(c, k, dominance)}
        if len(hidden) == 1 and len(group) > 1:  # its complement: the smallest released cell
            hidden.add(min((c for c in group if c.category not in hidden),
                           key=lambda c: (c.minutes, c.category)).category)
        for c in sorted(group, key=lambda c: c.category):
            key = {"month": month, "category": c.category}
            out.append({**key, "suppressed": True} if c.category in hidden else
                       {**key, "minutes": c.minutes, "arrangements": c.arrangements, "providers": c.providers,
                        "receivers": c.receivers})
    return out
