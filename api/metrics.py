"""Prometheus text metrics, in process: requests, latency, transfers posted/refused by reason.
No per-member labels, ever: metrics describe the service, not the people using it."""
from __future__ import annotations

import threading
from collections import Counter

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Counter = Counter()  # (method, route, status)
        self.latency: Counter = Counter()   # (route, bucket)
        self.latency_sum: Counter = Counter()
        self.latency_count: Counter = Counter()
        self.transfers: Counter = Counter()  # (outcome, reason)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            for b in BUCKETS:
                if seconds <= b:
                    self.latency[(route, b)] += 1
            self.latency_sum[route] += seconds
            self.latency_count[route] += 1

    def transfer(self, outcome: str, reason: str = "") -> None:
        with self._lock:
            self.transfers[(outcome, reason)] += 1

    def render(self) -> str:
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
        return "\n".join(lines) + "\n"


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
