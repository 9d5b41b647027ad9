"""Prometheus text metrics, in process: requests, latency, transfers posted/refused by reason,
posting latency, and the deployment's state for the alert rules in deploy/prometheus/
(anchoring lag, pending federation legs, database pool, disk space, anchoring key balance).
No per-member labels, ever: metrics describe the service, not the people using it.

Counters and histograms are per worker process (a scrape reaches one worker; Prometheus sums
or takes the max across scrapes). The state gauges are read from the database and the chain
at most every STATE_TTL_S / BALANCE_TTL_S seconds per process, with primary-key or indexed
queries only, so a scrape every 15 s costs a few milliseconds and never touches the chain
more than once a minute."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Posting is the path members wait on (a till, a phone at the door): finer at the low end, up
# to the 5 s at which a person gives up; the p99 alert reads these buckets.
POSTING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# The routes that post a signed transfer (route templates, as the middleware sees them).
POSTING_ROUTES = {("POST", "/v1/transfers"), ("POST", "/v1/remote-transfers")}
STATE_TTL_S = 10.0     # database-derived gauges: re-read at most this often per process
BALANCE_TTL_S = 60.0   # the anchoring key's balance: one eth_getBalance a minute at most


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Counter = Counter()  # (method, route, status)
        self.latency: Counter = Counter()   # (route, bucket)
        self.latency_sum: Counter = Counter()
        self.latency_count: Counter = Counter()
        self.transfers: Counter = Counter()  # (outcome, reason)
        self.posting: Counter = Counter()    # bucket -> count (cumulative, as Prometheus wants)
        self.posting_sum = 0.0
        self.posting_count = 0
        self.state = DeploymentState()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            if (method, route) in POSTING_ROUTES and 200 <= status < 300:  # acknowledged postings only
                for b in POSTING_BUCKETS:
                    if seconds <= b:
                        self.posting[b] += 1
                self.posting_sum += seconds
                self.posting_count += 1
            for b in BUCKETS:
                if seconds <= b:
                    self.latency[(route, b)] += 1
            self.latency_sum[route] += seconds
            self.latency_count[route] += 1

    def transfer(self, outcome: str, reason: str = "") -> None:
        with self._lock:
            self.transfers[(outcome, reason)] += 1

    def render(self, ctx=None) -> str:
        """The text exposition; with the app's context also the deployment's state gauges."""
        lines = ["# HELP ayni_http_requests_total HTTP requests by method, route and status.",
                 "# TYPE ayni_http_requests_total counter"]
        with self._lock:
            for (m, r, s), n in sorted(self.requests.items()):
                lines.append(f'ayni_http_requests_total{{method="{m}",route="{r}",status="{s}"}} {n}')
            lines += ["# HELP ayni_http_request_seconds Request latency.",
                      "# TYPE ayni_http_request_seconds histogram"]
            for route in sorted(self.latency_count):
                for b in BUCKETS:
                    lines.append(f'ayni_http_request_seconds_bucket{{route="{route}",le="{b}"}} '
                                 f'{self.latency[(route, b)]}')
                lines.append(f'ayni_http_request_seconds_bucket{{route="{route}",le="+Inf"}} '
                             f'{self.latency_count[route]}')
                lines.append(f'ayni_http_request_seconds_sum{{route="{route}"}} {self.latency_sum[route]:.6f}')
                lines.append(f'ayni_http_request_seconds_count{{route="{route}"}} {self.latency_count[route]}')
            lines += ["# HELP ayni_transfers_total Signed transfers by outcome and refusal reason.",
                      "# TYPE ayni_transfers_total counter"]
            for (outcome, reason), n in sorted(self.transfers.items()):
                lines.append(f'ayni_transfers_total{{outcome="{outcome}",reason="{reason}"}} {n}')
            lines += ["# HELP ayni_posting_seconds Time to acknowledge a posted transfer (2xx), request in to response out.",
                      "# TYPE ayni_posting_seconds histogram"]
            for b in POSTING_BUCKETS:
                lines.append(f'ayni_posting_seconds_bucket{{le="{b}"}} {self.posting[b]}')
            lines.append(f'ayni_posting_seconds_bucket{{le="+Inf"}} {self.posting_count}')
            lines.append(f"ayni_posting_seconds_sum {self.posting_sum:.6f}")
            lines.append(f"ayni_posting_seconds_count {self.posting_count}")
        if ctx is not None:
            lines += self.state.render(ctx)
        return "\n".join(lines) + "\n"


def _gauge(name: str, help_: str, value) -> list[str]:
    return [f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name} {value}"]


class DeploymentState:
    """Gauges about the deployment rather than the requests: read lazily on scrape, cached."""

    def __init__(self, clock=time.time):
        self._lock = threading.Lock()
        self.clock = clock
        self._state: dict | None = None
        self._state_at = -1e18
        self._balance: int | None = None
        self._balance_at = -1e18
        self._balance_ok = False

    # -- database --------------------------------------------------------------------
    def _read_state(self, ctx) -> dict:
        from sqlalchemy import func, select

        from ledger.store import federation_tables as F
        from ledger.store import tables as T
        now_ms = int(self.clock() * 1000)
        out: dict = {}
        with ctx.ledger.engine.connect() as conn:
            head = conn.execute(select(T.ledger_head.c.seq).where(T.ledger_head.c.id == 1)).scalar() or 0
            out["head"] = head
            contract = getattr(ctx.settings, "anchor_contract", None)
            if contract:
                AB = T.anchor_batches
                through = conn.execute(select(func.max(AB.c.last_seq)).where(
                    AB.c.contract == contract, AB.c.status == "confirmed")).scalar() or 0
                out["anchor_lag_entries"] = max(0, head - through)
                if head > through:  # the oldest entry still waiting: a primary-key lookup
                    at = conn.execute(select(T.entries.c.at).where(T.entries.c.seq == through + 1)).scalar()
                    out["anchor_lag_seconds"] = max(0.0, (now_ms - (at or now_ms)) / 1000)
                else:
                    out["anchor_lag_seconds"] = 0.0
            L = F.remote_legs
            prepared = L.c.state == "prepared"
            out["legs_pending"] = conn.execute(select(func.count()).select_from(L).where(prepared)).scalar() or 0
            out["legs_overdue"] = conn.execute(select(func.count()).select_from(L).where(
                prepared, L.c.deadline < now_ms)).scalar() or 0
        return out

    def _cached_state(self, ctx) -> dict | None:
        now = self.clock()
        if now - self._state_at >= STATE_TTL_S:
            try:
                self._state = self._read_state(ctx)
            except Exception:  # noqa: BLE001 - an unreachable database is what ayni_database_up says
                self._state = None
            self._state_at = now
        return self._state

    # -- chain -----------------------------------------------------------------------
    @staticmethod
    def anchor_key_address() -> str | None:
        """The anchoring key's public address: $AYNI_ANCHOR_ADDRESS, else the (public) `address`
        field of the V3 keystore at $AYNI_ANCHOR_KEYSTORE. Never decrypts anything."""
        addr = os.environ.get("AYNI_ANCHOR_ADDRESS")
        if addr:
            return addr
        ks = os.environ.get("AYNI_ANCHOR_KEYSTORE")
        if not ks:
            return None
        try:
            found = json.loads(Path(ks).read_text()).get("address")
        except (OSError, ValueError, AttributeError):
            return None
        return ("0x" + found.removeprefix("0x")) if isinstance(found, str) else None

    def _cached_balance(self) -> tuple[int | None, bool]:
        url, address = os.environ.get("AYNI_CHAIN_URL"), self.anchor_key_address()
        if not url or not address:
            return None, False
        now = self.clock()
        if now - self._balance_at >= BALANCE_TTL_S:
            self._balance_at = now
            try:  # the one balance rule (ledger/chain/balance.py), as `ayni doctor` and `ayni anchor`
                from ledger.chain.balance import anchor_key_balance_wei
                chain_id = os.environ.get("AYNI_CHAIN_ID")
                self._balance = anchor_key_balance_wei(url, address=address, timeout=2.0, expected_chain_id=(
                    int(chain_id) if chain_id and chain_id.strip().isdigit() else None))
                self._balance_ok = True
            except Exception:  # noqa: BLE001 - any fault: the chain is unreachable from here
                self._balance_ok = False  # the last balance read stays (it is still the best guess)
        return self._balance, self._balance_ok

    # -- rendering -------------------------------------------------------------------
    @staticmethod
    def _data_dir(ctx) -> Path:
        engine = ctx.ledger.engine
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            return Path(engine.url.database).resolve().parent
        return Path(getattr(ctx.settings, "secret_file", "ayni-data/session.key")).resolve().parent

    def render(self, ctx) -> list[str]:
        with self._lock:
            state = self._cached_state(ctx)
            balance, chain_ok = self._cached_balance()
        lines = _gauge("ayni_database_up", "1 when the last state read reached the database.",
                       int(state is not None))
        pool = ctx.ledger.engine.pool
        if hasattr(pool, "checkedout") and hasattr(pool, "size"):
            capacity = pool.size() + max(0, getattr(pool, "_max_overflow", 0))
            lines += _gauge("ayni_db_pool_checked_out", "Database connections in use by this worker.",
                            pool.checkedout())
            lines += _gauge("ayni_db_pool_capacity", "Connections this worker's pool can hand out "
                            "(pool size + overflow); checked_out/capacity near 1 means requests queue.", capacity)
        if state is not None:
            lines += _gauge("ayni_ledger_head_seq", "Last entry seq of the log.", state["head"])
            if "anchor_lag_entries" in state:
                lines += _gauge("ayni_anchor_lag_entries", "Entries not yet in a confirmed anchor batch "
                                "(of $AYNI_ANCHOR_CONTRACT).", state["anchor_lag_entries"])
                lines += _gauge("ayni_anchor_lag_seconds", "Age of the oldest entry not yet in a confirmed "
                                "anchor batch (0 when all are).", f"{state['anchor_lag_seconds']:.3f}")
            lines += _gauge("ayni_federation_legs_pending", "Remote-payment legs prepared and not yet "
                            "committed or aborted.", state["legs_pending"])
            lines += _gauge("ayni_federation_legs_overdue", "Prepared legs past their deadline (the driver "
                            "should have aborted them).", state["legs_overdue"])
        try:
            usage = shutil.disk_usage(self._data_dir(ctx))
            lines += _gauge("ayni_data_disk_free_bytes", "Free bytes on the data directory's filesystem.",
                            usage.free)
            lines += _gauge("ayni_data_disk_size_bytes", "Size of the data directory's filesystem.", usage.total)
        except OSError:
            pass
        if os.environ.get("AYNI_CHAIN_URL") and self.anchor_key_address():
            lines += _gauge("ayni_anchor_chain_up", "1 when the last balance read reached the chain node.",
                            int(chain_ok))
            if balance is not None:
                lines += _gauge("ayni_anchor_key_balance_wei", "Native-coin balance of the anchoring key "
                                "(read at most once a minute).", balance)
        return lines


class LimitsAndMetrics:
    """Plain ASGI middleware (no per-request task groups or body re-streaming, which cost a
    third of the server's CPU per transfer as BaseHTTPMiddleware): refuses bodies over
    `max_body` with 413 and records each request's route, status and latency."""

    def __init__(self, app, *, metrics: Metrics, max_body: int, too_large: bytes,
                 by_path: dict[str, tuple[int, bytes]] | None = None):
        self.app, self.metrics, self.max_body, self.too_large = app, metrics, max_body, too_large
        # (limit, 413 body) for the few paths whose bodies are larger by design (a transfer batch)
        self.by_path = by_path or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        import time
        started = time.perf_counter()
        status = [500]
        max_body, too_large = self.by_path.get(scope.get("path", ""), (self.max_body, self.too_large))
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body):
            await self._refuse(send, too_large)
            status[0] = 413
        else:
            seen = [0]

            async def counted_receive():
                message = await receive()
                if message["type"] == "http.request":
                    seen[0] += len(message.get("body", b""))
                    if seen[0] > max_body:  # a chunked body without Content-Length
                        raise _TooLarge()
                return message

            async def recording_send(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await self.app(scope, counted_receive, recording_send)
            except _TooLarge:
                await self._refuse(send, too_large)
                status[0] = 413
        route = scope.get("route")
        self.metrics.observe(scope.get("method", ""), getattr(route, "path", "unmatched"), status[0],
                             time.perf_counter() - started)

    async def _refuse(self, send, too_large: bytes | None = None):
        too_large = self.too_large if too_large is None else too_large
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(too_large)).encode())]})
        await send({"type": "http.response.body", "body": too_large})


class _TooLarge(Exception):
    pass
