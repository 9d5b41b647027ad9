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
