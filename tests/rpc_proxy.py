"""A tiny real JSON-RPC proxy on loopback, in front of a real node, that misbehaves on request.

    with RpcProxy(node_url) as proxy:          # proxy.url: "http://127.0.0.1:PORT"
        proxy.fault("eth_sendRawTransaction", "lose_reply")   # next such call: forwarded, no answer
        proxy.upstream = None                  # the node is down: every call gets no answer

Faults (each for the next `times` calls of `method`, "*" for any method):
- "lose_request": close the connection without forwarding (the node never saw it);
- "lose_reply":   forward, then close without answering (it happened; the caller does not know);
- "delay":        forward after `seconds` (longer than the caller's timeout: a timeout);
- "revert":       answer a JSON-RPC error "execution reverted" without forwarding;
- "http_502":     answer HTTP 502 from a "gateway" without forwarding.

It also keeps every raw transaction the node accepted (`accepted_txs`, in order): Hardhat keeps
its chain in memory only, so tests restore a killed node's chain by replaying them, as a real
node would reload its chain from disk.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("lose_request", "lose_reply", "delay", "revert", "http_502")


class RpcProxy:
    def __init__(self, upstream: str | None):
        self.upstream = upstream
        self.accepted_txs: list[str] = []
        self.calls: list[tuple[str, str]] = []  # (method, what happened)
        self._faults: list[dict] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy._handle(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "RpcProxy":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault(self, method: str, kind: str, *, times: int = 1, seconds: float = 0.0) -> None:
        assert kind in FAULTS, kind
        with self._lock:
            self._faults.append({"method": method, "kind": kind, "times": times, "seconds": seconds})

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def count(self, method: str, what: str) -> int:
        with self._lock:
            return sum(1 for m, w in self.calls if method in (m, "*") and w == what)

    def _take(self, method: str) -> dict | None:
        with self._lock:
            for f in self._faults:
                if f["method"] in (method, "*") and f["times"] > 0:
                    f["times"] -= 1
                    return dict(f)
        return None

    def _handle(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            req = json.loads(body)
            method = req.get("method", "?") if isinstance(req, dict) else "batch"
        except ValueError:
            req, method = None, "?"
        f = self._take(method)
        kind = f["kind"] if f else None
        upstream = self.upstream
        self._note(method, kind or ("node_down" if upstream is None else "ok"))
        if upstream is None or kind == "lose_request":
            return self._hang_up(h)
        if kind == "revert":
            return self._reply(h, 200, {"jsonrpc": "2.0", "id": req.get("id"),
                                        "error": {"code": 3, "message": "execution reverted", "data": "0x"}})
        if kind == "http_502":
            return self._reply(h, 502, {"error": "bad gateway"})
        if kind == "delay":
            time.sleep(f["seconds"])
        try:
            r = urllib.request.Request(upstream, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(r, timeout=30) as resp:
                status, data = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        except OSError:  # the node died under us: the caller gets no answer either
            return self._hang_up(h)
        if method == "eth_sendRawTransaction":
            try:
                if "result" in json.loads(data):
                    with self._lock:
                        self.accepted_txs.append(req["params"][0])
            except (ValueError, KeyError, TypeError):
                pass
        if kind == "lose_reply":
            return self._hang_up(h)
        self._reply(h, status, data)

    def _note(self, method: str, what: str) -> None:
        with self._lock:
            self.calls.append((method, what))

    @staticmethod
    def _hang_up(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        try:
            h.connection.shutdown(2)
        except OSError:
            pass

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, payload) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:  # the caller gave up (its timeout) before the answer came
            h.close_connection = True
