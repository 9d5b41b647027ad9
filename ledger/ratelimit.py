"""Rate limits shared by every API worker: the `limits` library's fixed-window strategy over a
counter table in our own database (ledger/store/auth_tables.py).

Why this shape (docs/api.md, "Rate limits"): counts must be shared by all workers and hosts,
and the one store they all share is the ledger's database; `limits` ships no SQL storage, so
`SQLCounterStorage` implements its Storage interface (incr/get/get_expiry/clear/reset/check)
with one atomic upsert per hit. The limits themselves are `limits` strings ("20/minute"),
parsed and enforced by the library. A limit set to "off" (or empty) is not enforced.

Keys never hold an IP address: a client is named by a keyed hash of its address (the key is
the server's secret, so the stored value cannot be reversed by trying all addresses), and a
counter row lives for one window. Addresses in keys are account addresses (pseudonyms)."""
from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from limits import RateLimitItem, parse
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter

from .core.errors import RateLimited
from .store import auth_tables as S
from .store.errors import domain_errors

PURGE_EVERY_S = 60  # expired counters are deleted at most this often per process


class SQLCounterStorage(Storage):
    """`limits` storage over the `rate_limit_counters` table (SQLite or PostgreSQL)."""

    STORAGE_SCHEME = None  # built with an engine, never from a storage URI

    def __init__(self, engine, clock: Callable[[], float] = time.time):
        super().__init__()
        self.engine, self.clock = engine, clock
        self._purged_at = 0.0

    @property
    def base_exceptions(self):
        return S.DATABASE_ERRORS

    def _reader(self):
        return self.engine.connect().execution_options(ayni_readonly=True)  # SQLite: no write lock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._now_ms()
        with domain_errors(), self.engine.begin() as conn:  # a failover: 503, not 500
            if conn.dialect.name == "postgresql":
                # a counter need not wait for a synchronous standby: with the standby gone (or an
                # old primary back) every rate-limited route, reads included, would hang on COMMIT
                conn.exec_driver_sql("SET LOCAL synchronous_commit = local")
            if now / 1000 - self._purged_at >= PURGE_EVERY_S:
                self._purged_at = now / 1000
                S.purge_expired_counters(conn, now)
            return S.incr_counter(conn, key, amount=amount, now_ms=now, window_ms=int(expiry * 1000))

    def get(self, key: str) -> int:
        with self._reader() as conn:
            return S.read_counter(conn, key, self._now_ms())[0]

    def get_expiry(self, key: str) -> float:
        with self._reader() as conn:
            return S.read_counter(conn, key, self._now_ms())[1] / 1000

    def check(self) -> bool:
        try:
            with self._reader() as conn:
                S.read_counter(conn, "", 0)
            return True
        except S.DATABASE_ERRORS:
            return False

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return S.clear_counters(conn)

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            S.clear_counters(conn, key)


@dataclass(frozen=True)
class Limit:
    name: str
    item: RateLimitItem | None  # None: not enforced
    what: str                   # for the refusal: "sign-in challenges from this client"


class RateLimits:
    """The configured limits by name; `hit(name, who)` counts one request or raises RateLimited."""

    def __init__(self, storage: Storage, limits: Mapping[str, str], descriptions: Mapping[str, str],
                 *, client_key: bytes, clock: Callable[[], float] = time.time):
        self.limiter = FixedWindowRateLimiter(storage)
        self.clock = clock
        self._client_key = client_key
        self.limits = {name: Limit(name, None if (spec or "off").strip().lower() in ("off", "") else parse(spec),
                                   descriptions.get(name, name))
                       for name, spec in limits.items()}

    def client(self, host: str | None) -> str:
        """A pseudonym of a client address, stable for this server's secret."""
        return hmac.new(self._client_key, (host or "unknown").encode(), hashlib.sha256).hexdigest()[:24]

    def hit(self, name: str, who: str) -> None:
        limit = self.limits[name]
        if limit.item is None:
            return
        if not self.limiter.hit(limit.item, name, who):
            self._refuse(limit, name, who)

    def check(self, name: str, who: str) -> None:
        """Refuse if `who` has no room left, without using any: for limits that count only
        what succeeded (call `record` after), so refused input does not use up a member's day."""
        limit = self.limits[name]
        if limit.item is not None and not self.limiter.test(limit.item, name, who):
            self._refuse(limit, name, who)

    def record(self, name: str, who: str) -> None:
        """Count one success (after `check`); never refuses what already happened."""
        limit = self.limits[name]
        if limit.item is not None:
            self.limiter.hit(limit.item, name, who)

    def _refuse(self, limit, name: str, who: str) -> None:
        reset = self.limiter.get_window_stats(limit.item, name, who).reset_time
        wait = max(1, math.ceil(reset - self.clock()))
        raise RateLimited(f"too many {limit.what}: at most {limit.item.amount} per "
                          f"{limit.item.get_expiry()} s; try again in {wait} s", retry_after_s=wait)
