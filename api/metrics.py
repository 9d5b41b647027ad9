"""Prometheus text metrics: requests, latency, transfers posted/refused by reason, posting
latency, and the deployment's state for the alert rules in deploy/prometheus/ (anchoring lag,
pending federation legs, database pool, disk space, anchoring key balance, last retention run).
No per-member labels, ever: metrics describe the service, not the people using it.

Several workers (`ayni serve --workers N`) share one scrape target, and a scrape lands on
whichever worker accepts the connection. Per-process counters would then jump between two
processes' totals, which Prometheus reads as counter resets: rate() and the alerts would follow
the totals since start, not the last minutes. So with $AYNI_METRICS_DIR set (`ayni serve` sets
it to a fresh folder whenever it starts more than one worker) every worker writes a snapshot of
its counters there (at most every FLUSH_S seconds, and before it answers a scrape) and a scrape
sums every snapshot: the counters are the server's, monotonic whichever worker answers. A
worker that exits leaves its last snapshot, so the sums never go down.

The state gauges are read from the database (through ledger.monitoring; this face holds no SQL)
and the chain at most every STATE_TTL_S / BALANCE_TTL_S seconds per process, with primary-key
or indexed queries only, so a scrape every 15 s costs a few milliseconds and never touches the
chain more than once a minute."""
from __future__ import annotations

import atexit
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
FLUSH_S = 1.0          # a worker's snapshot is at most this old when another worker answers a scrape
LIVE_S = 10.0          # a snapshot older than this is a worker that has gone: its pool is not counted


class Metrics:
    def __init__(self, directory: str | os.PathLike | None = None):
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
        self.pool: tuple[int, int] | None = None  # this worker's (checked out, capacity), set by render
        directory = directory if directory is not None else os.environ.get("AYNI_METRICS_DIR")
        self.directory = Path(directory) if directory else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = self.directory / f"worker-{os.getpid()}.json"
            threading.Thread(target=self._flush_loop, daemon=True, name="ayni-metrics-flush").start()
            atexit.register(self.flush)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            # Every posting, refused or failed too: a member waits as long for a 503 as for a 201,
            # and a posting that times out must show in the latency alert, not vanish from it.
            if (method, route) in POSTING_ROUTES:
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

    # -- several workers: snapshots in a shared folder ---------------------------------
    def snapshot(self) -> dict:
        with self._lock:
            return {"requests": [[*k, n] for k, n in self.requests.items()],
                    "latency": [[*k, n] for k, n in self.latency.items()],
                    "latency_sum": [[k, v] for k, v in self.latency_sum.items()],
                    "latency_count": [[k, n] for k, n in self.latency_count.items()],
                    "transfers": [[*k, n] for k, n in self.transfers.items()],
                    "posting": [[k, n] for k, n in self.posting.items()],
                    "posting_sum": self.posting_sum, "posting_count": self.posting_count,
                    "pool": list(self.pool) if self.pool else None}

    def flush(self) -> None:
        if self.directory is None:
            return
        tmp = self._file.with_name(self._file.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.snapshot()))
            os.replace(tmp, self._file)  # atomic: a reader sees the old snapshot or the new one
        except OSError:
            pass  # a full disk: the next flush tries again; metrics never fail a request

    def _flush_loop(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            self.flush()

    def _merged(self) -> Metrics:
        """This worker's counters plus every other worker's last snapshot."""
        if self.directory is None:
            return self
        self.flush()
        total = Metrics.__new__(Metrics)
        total._lock = threading.Lock()
        for name in ("requests", "latency", "latency_sum", "latency_count", "transfers", "posting"):
            setattr(total, name, Counter())
        total.posting_sum, total.posting_count = 0.0, 0
        checked_out = capacity = 0
        now = time.time()
        for path in sorted(self.directory.glob("worker-*.json")):
            try:
                snap = json.loads(path.read_text())
                live = path == self._file or now - path.stat().st_mtime < LIVE_S
            except (OSError, ValueError):
                continue
            for m, r, s, n in snap["requests"]:
                total.requests[(m, r, s)] += n
            for r, b, n in snap["latency"]:
                total.latency[(r, b)] += n
            for r, v in snap["latency_sum"]:
                total.latency_sum[r] += v
            for r, n in snap["latency_count"]:
                total.latency_count[r] += n
            for o, r, n in snap["transfers"]:
                total.transfers[(o, r)] += n
            for b, n in snap["posting"]:
                total.posting[b] += n
            total.posting_sum += snap["posting_sum"]
            total.posting_count += snap["posting_count"]
            if live and snap.get("pool"):
                checked_out += snap["pool"][0]
                capacity += snap["pool"][1]
        total.pool = (checked_out, capacity) if capacity else self.pool
        return total

    def render(self, ctx=None) -> str:
        """The text exposition; with the app's context also the deployment's state gauges."""
        if ctx is not None:
            from ledger import monitoring
            try:
                self.pool = monitoring.pool_use(ctx.ledger)
            except Exception:  # noqa: BLE001 - a pool without sizes: no pool gauges
                self.pool = None
        m = self._merged()
        lines = ["# HELP ayni_http_requests_total HTTP requests by method, route and status.",
                 "# TYPE ayni_http_requests_total counter"]
        with m._lock:
            for (meth, r, s), n in sorted(m.requests.items()):
                lines.append(f'ayni_http_requests_total{{method="{meth}",route="{r}",status="{s}"}} {n}')
            lines += ["# HELP ayni_http_request_seconds Request latency (every status).",
                      "# TYPE ayni_http_request_seconds histogram"]
            for route in sorted(m.latency_count):
                for b in BUCKETS:
                    lines.append(f'ayni_http_request_seconds_bucket{{route="{route}",le="{b}"}} '
                                 f'{m.latency[(route, b)]}')
                lines.append(f'ayni_http_request_seconds_bucket{{route="{route}",le="+Inf"}} '
                             f'{m.latency_count[route]}')
                lines.append(f'ayni_http_request_seconds_sum{{route="{route}"}} {m.latency_sum[route]:.6f}')
                lines.append(f'ayni_http_request_seconds_count{{route="{route}"}} {m.latency_count[route]}')
            lines += ["# HELP ayni_transfers_total Signed transfers by outcome and refusal reason.",
                      "# TYPE ayni_transfers_total counter"]
            for (outcome, reason), n in sorted(m.transfers.items()):
                lines.append(f'ayni_transfers_total{{outcome="{outcome}",reason="{reason}"}} {n}')
            lines += [("# HELP ayni_posting_seconds Time to answer a posted transfer (any status), request in "
                      "to response out."),
                      "# TYPE ayni_posting_seconds histogram"]
            for b in POSTING_BUCKETS:
                lines.append(f'ayni_posting_seconds_bucket{{le="{b}"}} {m.posting[b]}')
            lines.append(f'ayni_posting_seconds_bucket{{le="+Inf"}} {m.posting_count}')
            lines.append(f"ayni_posting_seconds_sum {m.posting_sum:.6f}")
            lines.append(f"ayni_posting_seconds_count {m.posting_count}")
        if ctx is not None:
            if m.pool is not None:
                lines += _gauge("ayni_db_pool_checked_out", "Database connections in use (all workers).", m.pool[0])
                lines += _gauge("ayni_db_pool_capacity", "Connections the workers' pools can hand out "
                                "(pool size + overflow); checked_out/capacity near 1 means requests queue.", m.pool[1])
            lines += self.state.render(ctx)
        return "\n".join(lines) + "\n"


def _gauge(name: str, help_: str, value) -> list[str]:
    return [f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name} {value}"]


def retention_stamp_path(session_key_file: str | os.PathLike) -> Path:
    """Where `ayni retention run` (and serve's retention thread) records its last success: next
    to the session key, in the service's state folder."""
    return Path(session_key_file).resolve().parent / "retention-last-success"


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
        self._data_dir: Path | None = None

    # -- database --------------------------------------------------------------------
    def _read_state(self, ctx) -> dict:
        from ledger import monitoring
        return monitoring.state(ctx.ledger, getattr(ctx.settings, "anchor_contract", None),
                                int(self.clock() * 1000))

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
    def data_dir(self, ctx) -> Path:
        if self._data_dir is None:  # PostgreSQL's data_directory is asked once per process
            from ledger import monitoring
            self._data_dir = monitoring.data_dir(ctx.ledger, getattr(ctx.settings, "secret_file",
                                                                     "ayni-data/session.key"))
        return self._data_dir

    def render(self, ctx) -> list[str]:
        with self._lock:
            state = self._cached_state(ctx)
            balance, chain_ok = self._cached_balance()
        lines = _gauge("ayni_database_up", "1 when the last state read reached the database.",
                       int(state is not None))
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
            usage = shutil.disk_usage(self.data_dir(ctx))
            lines += _gauge("ayni_data_disk_free_bytes", "Free bytes on the data directory's filesystem.",
                            usage.free)
            lines += _gauge("ayni_data_disk_size_bytes", "Size of the data directory's filesystem.", usage.total)
        except OSError:
            pass
        try:
            stamp = retention_stamp_path(getattr(ctx.settings, "secret_file", "ayni-data/session.key"))
            lines += _gauge("ayni_retention_last_success_timestamp_seconds", "When `ayni retention run` "
                            "(or serve's retention thread) last finished without error (Unix time).",
                            f"{float(stamp.read_text().strip()):.0f}")
        except (OSError, ValueError):
            pass  # never ran here: the alert's absent() case
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
