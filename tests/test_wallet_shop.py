"""`ayni-wallet` shop commands end to end: the real console script against a real `ayni serve`
(SQLite, no chain) over loopback HTTP: the shop profile, an open till request paid by a customer,
a refund signed with the shop's own key, and the takings report (table, JSON, CSV) equal to the
ledger's figures."""
from __future__ import annotations

import csv
import subprocess
from datetime import datetime, timezone

import pytest

from wallet_cli.client import ApiClient

from .test_wallet_commands import BIN, Wallets, clean_env, free_port, stop, wait_ready


@pytest.fixture(scope="module")
def coop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shop-e2e")
    port = free_port()
    w = Wallets(tmp, f"http://127.0.0.1:{port}", "")
    treasurer = w.add("tre")
    for name in ("ana", "bea", "shop"):
        w.add(name)
    db = f"sqlite:///{tmp / 'coop.db'}"
    env = clean_env()
    subprocess.run([str(BIN / "ayni"), "init", "--db", db, "--treasurer", treasurer], check=True,
                   capture_output=True, env=env)
    proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", db, "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**env, "AYNI_SESSION_KEY_FILE": str(tmp / "session.key")})
    try:
        wait_ready(w.api, proc)
        for name in ("ana", "bea"):
            w.ok("tre", "open-account", w.addr[name])
        w.ok("tre", "open-account", w.addr["shop"], "--role", "shop")
        yield w
    finally:
        stop(proc)
        proc.stdout.close()
        proc.stderr.close()


def cred(w, who) -> int:
    with ApiClient(w.api, key=w.key[who]) as c:
        doc = c.get(f"/v1/accounts/{c.address}")
    return next(b for b in doc["balances"] if b["currency"] == "CRED")["balance"]


def test_profile_set_show_unpublish(coop):
    w = coop
    p = w.json("shop", "shop", "profile", "set", "--name", "La Espiga", "--opening-hours", "Mon-Sat 8-14",
               "--credit-share", "30%")
    assert p["name"] == "La Espiga" and p["creditShareBp"] == 3000 and p["published"]
    assert "30 %" in w.ok("ana", "shop", "profile", "show", w.addr["shop"])
    assert "not_authorised" in w.refused("ana", "shop", "profile", "set", "--name", "Ana")  # not a shop account
    assert "invalid_input" in w.refused("shop", "shop", "profile", "set", "--name", "La\u200bEspiga")
    assert "at most 100 %" in w.refused("shop", "shop", "profile", "set", "--name", "x", "--credit-share", "101")
    assert w.json("shop", "shop", "profile", "unpublish")["published"] is False
    assert "not_found" in w.refused("ana", "shop", "profile", "show", w.addr["shop"])
    assert "NOT published" in w.ok("shop", "shop", "profile", "show")
    w.ok("shop", "shop", "profile", "set", "--name", "La Espiga")


def test_open_request_refund_and_takings(coop, tmp_path):
    w = coop
    r = w.json("shop", "request", "--amount", "20.00", "--currency", "CRED", "--till", "Till 1")
    assert r["payer"] is None and r["open"] and r["till"] == "Till 1"
    assert "invalid_input" in w.refused("shop", "request", "--amount", "1", "--currency", "CRED", "--till", "Till\u2060 1")
    w.ok("ana", "approve", r["id"], "--yes")
    assert "forbidden" in w.refused("bea", "approve", r["id"], "--yes")  # paid: no longer open to all
    seq = w.json("shop", "requests", "--outgoing")["items"][0]["paidSeq"]
    assert "anyone (open)" in w.ok("shop", "requests", "--outgoing")
    assert "only its payee refunds it" in w.refused("bea", "refund", str(seq), "--amount", "5", "--yes")
    assert "refund_exceeds_remaining" in w.refused("shop", "refund", str(seq), "--amount", "30", "--yes")
    refunded = w.json("shop", "refund", str(seq), "--amount", "5.00", "--yes")
    assert refunded["seq"] > seq
    assert cred(w, "ana") == -1500 and cred(w, "shop") == 1500
    day = datetime.now(timezone.utc).date().isoformat()
    rep = w.json("shop", "takings", "--from", day, "--to", day)
    assert rep["totals"] == [{"currency": "CRED", "count": 1, "sum": 2000, "refunds": 500, "net": 1500}]
    assert rep["totals"][0]["net"] == cred(w, "shop")  # the ledger's figure
    out = tmp_path / "takings.csv"
    w.ok("shop", "takings", "--from", day, "--to", day, "--period", "month", "--csv", str(out))
    rows = list(csv.DictReader(out.open()))
    assert rows == [{"period": day[:7], "till": "Till 1", "currency": "CRED", "count": "1", "sum": "2000",
                     "refunds": "500", "net": "1500"}]
    table = w.ok("shop", "takings", "--from", day, "--to", day, "--till", "Till 1")
    assert "Till 1" in table and "net" in table
    assert "invalid_input" in w.refused("shop", "takings", "--from", "2026-02-30", "--to", day)
    assert "--period must be" in w.refused("shop", "takings", "--from", day, "--to", day, "--period", "year")


class LyingServer:
    """A real loopback HTTP proxy in front of `ayni serve` that rewrites the refund the server
    describes (POST /v1/transfers/{seq}/refunds) with `tamper`: what a compromised server sends."""

    def __init__(self, upstream: str, tamper):
        import json as _json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                r = httpx.request(self.command, upstream + self.path, content=body, headers=headers, timeout=30)
                data = r.content
                if self.command == "POST" and self.path.endswith("/refunds") and r.status_code == 201:
                    data = _json.dumps(tamper(r.json())).encode()
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            do_GET = do_POST = do_PUT = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        outer.server = self.server

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_refund_described_wrongly_by_the_server_is_not_signed(coop):
    """The wallet recomputes the refund id from the payment's digest and checks payee, currency and
    amount before signing: a lying server gets no signature, and nothing is posted."""
    w = coop
    r = w.json("shop", "request", "--amount", "3.00", "--currency", "CRED")
    w.ok("ana", "approve", r["id"], "--yes")
    seq = w.json("shop", "requests", "--outgoing")["items"][0]["paidSeq"]
    before = cred(w, "shop")
    tampers = {"payee": lambda i: {**i, "payee": w.addr["bea"]},
               "refundId": lambda i: {**i, "refundId": "0x" + "11" * 32},
               "currency": lambda i: {**i, "currency": "HOUR"}}
    for what, tamper in tampers.items():
        proxy = LyingServer(w.api, tamper)
        try:
            out = w.refused("shop", "refund", str(seq), "--amount", "1.00", "--yes", "--api", proxy.url)
        finally:
            proxy.close()
        assert "does not match the payment" in out and what in out and "nothing signed" in out, out
    assert cred(w, "shop") == before
    w.json("shop", "refund", str(seq), "--amount", "1.00", "--yes")  # the honest server: signed and posted
    assert cred(w, "shop") == before - 100
