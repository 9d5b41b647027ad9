"""`ayni-wallet listings ...` end to end: the real console script against a real `ayni serve`
(SQLite, no chain) over loopback HTTP, from posting a need to the receiver's approval of the
linked payment request."""
from __future__ import annotations

import subprocess

import pytest

from .test_wallet_commands import BIN, Wallets, clean_env, free_port, stop, wait_ready


@pytest.fixture(scope="module")
def coop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("board-e2e")
    port = free_port()
    w = Wallets(tmp, f"http://127.0.0.1:{port}", "")
    treasurer = w.add("tre")
    for name in ("ana", "bea", "cho"):
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
        for name in ("ana", "bea", "cho"):
            w.ok("tre", "open-account", w.addr[name])
        yield w
    finally:
        stop(proc)


def test_post_search_answer_arrange_bill_approve(coop):
    w = coop
    assert "elderly_care" in w.ok("ana", "listings", "config")
    need = w.json("bea", "listings", "post", "--kind", "need", "--title", "Help after surgery",
                  "--description", "3 h, 12-14 May", "--category", "errands", "--area", "norte", "--per", "agree")
    assert need["status"] == "active" and need["expiresAt"] - need["createdAt"] == 7 * 86_400_000
    w.ok("cho", "listings", "post", "--kind", "offer", "--title", "Dog walking", "--category", "company",
         "--area", "sur", "--price", "1h", "--per", "hour", "--slot", "sat:10:00-12:00")
    found = w.json("ana", "listings", "search", "--text", "surgery")
    assert [i["id"] for i in found["items"]] == [need["id"]] and "author" not in found["items"][0]
    assert "Dog walking" in w.ok("ana", "listings", "search", "--shuffle")
    assert "invalid_input" in w.refused("ana", "listings", "post", "--kind", "offer", "--title", "x",
                                        "--category", "gardening", "--area", "sur", "--per", "agree")
    conv = w.json("ana", "listings", "answer", need["id"], "-m", "I can help on the 12th")
    assert "I can help on the 12th" in w.ok("bea", "listings", "messages", conv["id"])
    assert "unknown_conversation" in w.refused("cho", "listings", "messages", conv["id"])
    arr = w.json("ana", "listings", "propose", conv["id"], "--what", "shopping and cooking", "--when", "12 May",
                 "--amount", "3h")
    assert arr["amount"] == 180 and arr["status"] == "proposed"
    assert "invalid_transition" in w.refused("ana", "listings", "accept", arr["id"])
    assert "accepted" in w.ok("bea", "listings", "accept", arr["id"])
    billed = w.json("ana", "listings", "bill", arr["id"], "--memo", "12 May")
    request_id = billed["request"]["id"]
    assert billed["arrangement"]["status"] == "payment_requested"
    w.ok("bea", "approve", request_id, "--yes")
    assert w.json("ana", "listings", "arrangements", "--status", "paid")["items"][0]["id"] == arr["id"]
    assert "only they will read it" in w.ok("bea", "listings", "thank", arr["id"], "-m", "Thank you!")
    assert w.hour("ana")["balance"] == 180
    assert "closed" in w.ok("bea", "listings", "close", need["id"])
    assert w.json("ana", "listings", "search", "--text", "surgery")["items"] == []


def test_the_demo_completes_an_arrangement_through_payment(tmp_path):
    from rich.console import Console

    from ledger.cli.demo import run_demo
    result = run_demo(f"sqlite:///{tmp_path / 'demo.db'}", transfers=20, seed=5, console=Console(quiet=True))
    assert result["board"]["listings"] == 4 and result["board"]["arrangement"] == "paid"
    assert result["ok"]
