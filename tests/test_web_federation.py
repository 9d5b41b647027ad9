"""The web app pays a member of an allied community (issue 15), in a real browser (Chromium
driven by playwright-core, tests/web/remote_flow.mjs) against two real `ayni serve` nodes on
SQLite allied through the CLI (tests/federation_nodes.py) at a 1:2 rate: B's member shares a
link naming their community, A's member pastes it into their own app, sees both amounts,
signs the RemoteTransfer in the browser; both nodes record the payment committed and both
histories show it with both amounts. Screenshots (360 px, no sideways scroll) land in
test-artifacts/web/."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import httpx
import pytest

from ledger.chain.keys import write_keystore
from ledger.core.codec import hex0x
from ledger.core.federation import peer_address

from .federation_nodes import FAST_SCRYPT_N, PASSWORD, Node, ally
from .test_web import ARTIFACTS, CHROMIUM, ROOT, WEB_TESTS, _browser_available, node  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webfed")
    a = Node("A", f"sqlite:///{tmp}/a.db", tmp / "A")
    b = Node("B", f"sqlite:///{tmp}/b.db", tmp / "B")
    try:
        for n in (a, b):
            n.create()
        for n in (a, b):
            n.start()
        ally(a, b, units=(1, 2))
        yield a, b, tmp
    finally:
        a.close()
        b.close()


@pytest.mark.slow
@pytest.mark.usefixtures("node")  # node and node_modules present (or a loud skip; a failure in CI)
def test_a_member_pays_a_member_of_an_allied_community_in_the_browser(nodes):
    _browser_available()
    a, b, tmp = nodes
    keystores = {}
    for n, i in ((a, 0), (b, 1)):
        path = tmp / f"{n.name}-member{i}.json"
        write_keystore(str(path), n.keys[i], PASSWORD, scrypt_n=FAST_SCRYPT_N)
        keystores[n.name] = str(path)
    env = {**os.environ, "A_URL": a.base, "B_URL": b.base, "A_KEYSTORE": keystores["A"],
           "B_KEYSTORE": keystores["B"], "PASS": PASSWORD, "B_COMMUNITY": hex0x(b.community),
           "OUT": str(ARTIFACTS), "CHROMIUM": CHROMIUM}
    r = subprocess.run([shutil.which("node"), str(WEB_TESTS / "remote_flow.mjs")], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=240, check=False)
    assert r.returncode == 0, f"browser flow failed:\n{r.stderr[-6000:]}\n{a.log_tail()}\n{b.log_tail()}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    pid = out["paymentId"]

    # both nodes: committed, with the amounts the screens showed (45 minutes here, 90 there)
    for n, side in ((a, "out"), (b, "in")):
        leg = httpx.get(f"{n.base}/v1/remote-transfers/{pid}", timeout=10).json()
        assert leg == {"paymentId": pid, "state": "committed", "code": "", "amount": 45, "currency": "HOUR",
                       "delivered": 90, "payeeCurrency": "HOUR", "side": side}, (n.name, leg)
    a.stop()
    b.stop()
    la, lb = a.open_ledger(), b.open_ledger()
    try:
        assert la.verify().ok and lb.verify().ok
        assert la.positions(a.address(0))[(a.address(0), "HOUR")].balance == -45  # the refused one: nothing
        assert la.positions(a.address(0))[(a.address(0), "HOUR")].held_out == 0
        assert lb.positions(b.address(1))[(b.address(1), "HOUR")].balance == 90
        assert la.positions(peer_address(b.community))[(peer_address(b.community), "HOUR")].balance == 45
        assert lb.positions(peer_address(a.community))[(peer_address(a.community), "HOUR")].balance == -90
    finally:
        la.close()
        lb.close()
    assert len(out["shots"]) == 8 and all((ARTIFACTS / s).is_file() for s in out["shots"])
