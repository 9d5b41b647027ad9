"""A real HTTP proxy on loopback in front of one `ayni serve`, through which the OTHER node
reaches it: it forwards node-to-node requests and misbehaves on request, per protocol message
kind (the body's NodeMessage `kind`: prepare, prepared, refused, commit, abort, ack).

    with FedProxy(node_b_base) as proxy:      # proxy.url goes into the alliance as B's URL
        proxy.fault("prepare", "lose_reply")  # next PREPARE: forwarded, the answer is lost
        proxy.on("prepare", kill_b)           # after the next PREPARE reached B: call kill_b()
        proxy.upstream = None                 # B is unreachable: every request fails

Batches ({"messages": [...]}, what the nodes' outboxes send under load): a fault is a network
fault, so it hits a REQUEST: a batch request takes the next fault registered for any kind it
holds, or for "batch" (every batch request, whatever it holds), and the whole request is lost,
duplicated, ... (which is what a lost connection does to every message it carries). Hooks run
once per message inside the batch that matches (kind and payment), as for a single message.

Faults (each for the next `times` requests holding a message of `kind`, "*" for any):
- "lose_request": close the connection without forwarding (the node never saw it);
- "lose_reply":   forward, then close without answering (it happened; the sender does not know);
- "duplicate":    forward twice, answer with the second reply;
- "delay":        wait `seconds` before forwarding (later than the sender's timeout, say).
Hooks run after forwarding, before answering: a SIGKILL there is "right after it received X".
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS = ("lose_request", "lose_reply", "duplicate", "delay")


def message_kind(body: bytes) -> tuple[str, str | None]:
    """(kind, paymentId) of a wire message's NodeMessage ("batch" for a batch)."""
    try:
        data = json.loads(body)
    except ValueError:
        return "?", None
    return _kind_of(data)


def _kind_of(data: object) -> tuple[str, str | None]:
    if not isinstance(data, dict):
        return "?", None
    if isinstance(data.get("messages"), list):
        return "batch", None
    for part in (data.get("message"), data):
        if isinstance(part, dict) and isinstance(part.get("kind"), str):
            pid = part.get("paymentId")
            return part["kind"], pid.lower() if isinstance(pid, str) else None
    return "other", None


def message_kinds(body: bytes) -> list[tuple[str, str | None]]:
    """(kind, paymentId) of every message a request carries: one for a single message; for a
    batch ("batch", None) first, then each message's."""
    try:
        data = json.loads(body)
    except ValueError:
        return [("?", None)]
    kind = _kind_of(data)
    if kind[0] != "batch":
        return [kind]
    return [kind] + [_kind_of(m) for m in data["messages"]]


class FedProxy:
    def __init__(self, upstream: str | None):
        self.upstream = upstream
        self._faults: list[list] = []   # [kind, fault, times_left, seconds]
        self._hooks: list[list] = []    # [kind, callback, times_left]
        self._lock = threading.Lock()
        self.seen: Counter = Counter()           # messages by kind (a batch: "batch" and each of its own)
        self.seen_in_batch: Counter = Counter()  # those of them carried inside batches
        self.client = httpx.Client(timeout=30.0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._relay(b"")

            def do_POST(self):
                self._relay(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _relay(self, body: bytes):
                kinds = message_kinds(body) if body else [("get", None)]
                for kind, _ in kinds:
                    proxy.seen[kind] += 1
                if kinds[0][0] == "batch":
                    proxy.seen_in_batch.update(k for k, _ in kinds[1:])
                fault, seconds = proxy._take_fault([k for k, _ in kinds])
                if proxy.upstream is None or fault == "lose_request":
                    self.close_connection = True
                    return
                if fault == "delay":
                    time.sleep(seconds)
                try:
                    r = proxy._forward(self.command, self.path, body)
                    if fault == "duplicate":
                        r = proxy._forward(self.command, self.path, body)
                except httpx.HTTPError:
                    self.close_connection = True
                    return
                for callback in proxy._take_hooks(kinds):
                    callback()
                if fault == "lose_reply":
                    self.close_connection = True
                    return
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a node SIGKILLed mid-answer: the broken pipe is the point, not news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _forward(self, method: str, path: str, body: bytes) -> httpx.Response:
        return self.client.request(method, self.upstream.rstrip("/") + path, content=body or None,
                                   headers={"Content-Type": "application/json"} if body else {})

    def fault(self, kind: str, fault: str, *, times: int = 1, seconds: float = 0.0) -> None:
        assert fault in FAULTS, fault
        with self._lock:
            self._faults.append([kind, fault, times, seconds])

    def on(self, kind: str, callback, *, times: int = 1, payment: str | None = None) -> None:
        """Run `callback` after the next `times` messages of `kind` (about `payment` only, if given)."""
        with self._lock:
            self._hooks.append([kind, callback, times, payment.lower() if payment else None])

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._hooks.clear()

    def _take_fault(self, kinds: list[str]):
        """The first fault registered for a kind the request holds (one per request)."""
        with self._lock:
            for f in self._faults:
                if (f[0] == "*" or f[0] in kinds) and f[2] > 0:
                    f[2] -= 1
                    return f[1], f[3]
        return None, 0.0

    def _take_hooks(self, kinds: list[tuple[str, str | None]]):
        """The hooks of every message the request holds (a batch's own "batch" entry included)."""
        out = []
        with self._lock:
            for kind, pid in kinds:
                for h in self._hooks:
                    if h[0] in (kind, "*") and h[2] > 0 and h[3] in (None, pid):
                        h[2] -= 1
                        out.append(h[1])
        return out

    def __enter__(self) -> FedProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()
