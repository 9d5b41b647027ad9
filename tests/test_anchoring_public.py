"""Anchoring on a public chain, against a real Hardhat node (one per module): EIP-1559 fees under
a maximum (the batch is postponed above it, with the deadline warning), a stuck transaction
replaced at the same nonce with raised fees, reorgs deeper and shallower than the confirmations
(evm_snapshot / evm_revert, automine off), chain presets, `ayni anchor --estimate` and the
anchoring key's balance. docs/anchoring.md, "Anchoring on a public chain"."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.anchoring import Anchoring, AnchorReport
from ledger.chain import AnchorChain
from ledger.chain import fees as F
from ledger.chain import presets as P
from ledger.chain.balance import (
    anchor_key_balance_wei,
    batches_affordable,
    keystore_address,
)
from ledger.chain.keys import write_keystore
from ledger.core.typed_data import address_of_key

from .conftest import Community
from .hardhat_node import HARDHAT_CHAIN_ID, HARDHAT_KEYS, hardhat_node, rpc

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GWEI = 10**9


@pytest.fixture(scope="module")
def node():
    with hardhat_node() as url:
        yield url


@pytest.fixture
def coop(tmp_path):
    c = Community(url := f"sqlite:///{tmp_path}/coop.db")
    c.url = url
    for n in ("ana", "bea", "cai"):
        c.member(n)
    c.n = 0

    def post(k):
        names = ("ana", "bea", "cai")
        for _ in range(k):
            c.n += 1
            c.ledger.submit(c.pay(names[c.n % 3], names[(c.n + 1) % 3], 1 + c.n % 5, memo=f"visit {c.n}"))
    c.post = post
    yield c
    c.dispose()


@pytest.fixture
def chain(node):
    c = AnchorChain.connect(node, private_key=HARDHAT_KEYS[0])
    c.deploy(admin=address_of_key(HARDHAT_KEYS[1]))
    yield c
    # the module's node is shared: leave it as found, with no transaction of ours left waiting
    mine(node, 2, base_fee_gwei=1)
    rpc(node, "evm_setAutomine", [True])


def mine(node, n=1, *, base_fee_gwei=None):
    for _ in range(n):
        if base_fee_gwei is not None:
            rpc(node, "hardhat_setNextBlockBaseFeePerGas", [hex(int(base_fee_gwei * GWEI))])
        rpc(node, "evm_mine")


def tx_count(chain):
    return chain.w3.eth.get_transaction_count(chain.sender, "latest")


def cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True, check=False,
                          timeout=120, env=env, cwd=ROOT)


def row(job, first_seq, *statuses):
    rows = [b for b in job.batches() if b["first_seq"] == first_seq and (not statuses or b["status"] in statuses)]
    return rows[-1] if rows else None


# -- fees ------------------------------------------------------------------------------------

def test_fee_rules():
    q = F.quote(base_fee=10 * GWEI, tip=GWEI, cap=15 * GWEI)
    assert (q.max_fee, q.postponed) == (15 * GWEI, None)  # 2 x base + tip, capped
    assert F.quote(base_fee=15 * GWEI, tip=GWEI, cap=15 * GWEI).postponed.startswith("postponed: fee 16 gwei")
    assert F.quote(base_fee=None, tip=0, gas_price=3 * GWEI, cap=2 * GWEI).postponed == \
        "postponed: fee 3 gwei > max 2 gwei"
    assert F.bump(100) == 110 and F.bump(101) == 112  # at least +10%, rounded up
    r = F.replacement(3 * GWEI, GWEI, F.quote(base_fee=40 * GWEI, tip=GWEI, cap=100 * GWEI))
    assert r.tip >= F.bump(GWEI) and r.max_fee == 2 * 40 * GWEI + r.tip
    assert isinstance(F.replacement(3 * GWEI, GWEI, F.quote(base_fee=200 * GWEI, tip=GWEI, cap=100 * GWEI)), str)
    assert isinstance(F.replacement(100 * GWEI, GWEI, F.quote(base_fee=GWEI, tip=GWEI, cap=100 * GWEI)), str)
    assert F.to_wei_per_gas("0.001") == 10**6 and F.to_wei_per_gas(20) == 20 * GWEI
    for bad in ("0", "-1", "abc", "1e-12"):
        with pytest.raises(ValueError):
            F.to_wei_per_gas(bad)


def test_type2_fees_under_the_max_and_postponed_above_it(node, chain, coop):
    coop.post(6)
    start_ms = min(e.at for e in coop.ledger.iter_entries())
    later = {"ms": start_ms}
    job = Anchoring(coop.ledger, chain, max_batch=10, max_fee_per_gas=20 * GWEI, clock=lambda: later["ms"])
    nonce = tx_count(chain)

    rpc(node, "hardhat_setNextBlockBaseFeePerGas", [hex(50 * GWEI)])  # a fee spike
    report = job.run(wait_s=2)
    assert report.postponed.startswith("postponed: fee 51 gwei") and "> max 20 gwei" in report.postponed
    assert job.batches() == [] and tx_count(chain) == nonce  # nothing written, nothing sent
    assert not any("deadline" in w for w in report.warnings)  # the entries are new: no alarm yet

    later["ms"] = start_ms + 13 * 3600 * 1000  # 13 h later, still too expensive: half the day is gone
    rpc(node, "hardhat_setNextBlockBaseFeePerGas", [hex(50 * GWEI)])
    report = job.run(wait_s=2)
    (warning,) = [w for w in report.warnings if w.startswith("anchoring deadline")]
    assert "entry 1 has waited 13 h" in warning and "passes in 11 h" in warning and "--max-fee-gwei" in warning

    rpc(node, "hardhat_setNextBlockBaseFeePerGas", [hex(GWEI)])  # the spike is over
    report = job.run(wait_s=10)
    assert report.postponed is None and report.confirmed == 1 and report.anchored_through == coop.ledger.head()[0]
    (b,) = job.batches()
    tx = chain.w3.eth.get_transaction(b["tx_hash"])
    assert tx["type"] == 2 and tx["maxFeePerGas"] <= 20 * GWEI and tx["nonce"] == b["nonce"] == nonce
    assert b["max_fee_per_gas"] == tx["maxFeePerGas"] and b["priority_fee_per_gas"] == tx["maxPriorityFeePerGas"]


# -- a stuck transaction ----------------------------------------------------------------------

def test_stuck_transaction_is_replaced_at_the_same_nonce(node, chain, coop):
    coop.post(4)
    job = Anchoring(coop.ledger, chain, max_batch=10, max_fee_per_gas=100 * GWEI, replace_after_s=0,
                    max_replacements=2)
    rpc(node, "evm_setAutomine", [False])
    report = AnchorReport()
    assert job.anchor_next(report) and report.sent == 1
    first = row(job, 1)
    assert first["status"] == "pending" and first["attempts"] == 1

    mine(node, base_fee_gwei=50)  # the base fee jumps above what the transaction offered
    assert chain.tx_status(first["tx_hash"]).status == "pending"
    report = AnchorReport()
    job.reconcile(report)
    assert report.replaced == 1
    second = row(job, 1)
    assert second["nonce"] == first["nonce"] and second["tx_hash"] != first["tx_hash"]
    assert second["tx_hashes"].split() == [first["tx_hash"], second["tx_hash"]] and second["attempts"] == 2
    assert second["max_fee_per_gas"] >= F.bump(first["max_fee_per_gas"])
    assert second["priority_fee_per_gas"] >= F.bump(first["priority_fee_per_gas"])
    assert second["max_fee_per_gas"] <= 100 * GWEI

    mine(node, base_fee_gwei=150)  # above the maximum: no replacement can help, none is sent
    report = AnchorReport()
    job.reconcile(report)
    assert report.replaced == 0 and "stuck" in report.postponed and "100 gwei" in report.postponed
    assert row(job, 1)["attempts"] == 2

    mine(node, base_fee_gwei=1)  # fees fall: the replacement is mined
    mine(node)
    report = job.run(wait_s=5)
    assert report.confirmed == 1 and report.anchored_through == coop.ledger.head()[0]
    done = row(job, 1)
    event = chain.find_batch(1)
    assert done["status"] == "confirmed" and done["tx_hash"] == second["tx_hash"] == event.tx_hash
    assert chain.w3.eth.get_transaction(done["tx_hash"])["nonce"] == first["nonce"]
    assert tx_count(chain) == first["nonce"] + 1  # one nonce used: the original can never land too
    assert [e.first_seq for e in chain.anchored_events()] == [1]


def test_a_lost_reply_is_sent_again_at_the_same_nonce(node, chain, coop):
    """The node took the transaction but its reply was lost: the batch is sent again, replacing
    the one in the pool at the nonce written before sending, never at a second nonce."""
    from ledger.chain import ChainUnavailable

    from .rpc_proxy import RpcProxy
    coop.post(3)
    with RpcProxy(node) as proxy:
        via = AnchorChain.connect(proxy.url, private_key=HARDHAT_KEYS[0], contract_address=chain.contract_address,
                                  timeout=3)
        job = Anchoring(coop.ledger, via)
        rpc(node, "evm_setAutomine", [False])
        proxy.fault("eth_sendRawTransaction", "lose_reply")
        with pytest.raises(ChainUnavailable):
            job.anchor_next(AnchorReport())
        lost = row(job, 1)
        assert lost["status"] == "sending" and lost["nonce"] == tx_count(chain)
        assert len(proxy.accepted_txs) == 1  # the node has it, in its pool
        job.run(wait_s=0.1)
        mine(node)
        report = job.run(wait_s=5)
    assert report.anchored_through == coop.ledger.head()[0]
    assert [b["status"] for b in job.batches()] == ["failed", "confirmed"]
    assert row(job, 1, "confirmed")["nonce"] == lost["nonce"] and tx_count(chain) == lost["nonce"] + 1
    assert [e.first_seq for e in chain.anchored_events()] == [1]


def test_replacements_are_bounded(node, chain, coop):
    coop.post(3)
    job = Anchoring(coop.ledger, chain, max_fee_per_gas=100 * GWEI, replace_after_s=0, max_replacements=1)
    rpc(node, "evm_setAutomine", [False])
    assert job.anchor_next(AnchorReport())
    for expect_replaced, base in ((1, 40), (0, 100)):  # 100 gwei: above what the replacement offers
        mine(node, base_fee_gwei=base)
        report = AnchorReport()
        job.reconcile(report)
        assert report.replaced == expect_replaced
    assert "not mined after 1 replacements" in report.warnings[0] and row(job, 1)["attempts"] == 2


# -- reorgs ------------------------------------------------------------------------------------

def test_reorg_deeper_than_confirmations_drops_the_batch_and_it_is_anchored_again(node, chain, coop, tmp_path):
    coop.post(5)
    job = Anchoring(coop.ledger, chain, confirmations=2, recheck_blocks=64)
    rpc(node, "evm_setAutomine", [False])

    def settle():
        """What the chain does meanwhile: the anchorer runs, blocks keep coming."""
        report = AnchorReport()
        for _ in range(6):
            r = job.run(wait_s=0.1)
            for k in ("sent", "confirmed", "dropped", "failed", "adopted", "replaced"):
                setattr(report, k, getattr(report, k) + getattr(r, k))
            report.anchored_through = r.anchored_through
            mine(node)
        return report

    a = coop.ledger.head()[0]
    assert settle().anchored_through == a  # batch 1..a, before the fork point
    coop.post(4)
    b = coop.ledger.head()[0]
    snapshot = rpc(node, "evm_snapshot")
    report = settle()
    assert report.anchored_through == b and report.confirmed == 1  # batch a+1..b confirmed (2 blocks)
    before = row(job, a + 1)
    assert before["status"] == "confirmed" and before["block_hash"]
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(job.receipt(b - 1)))  # a member got a receipt for an entry in it

    rpc(node, "evm_revert", [snapshot])  # the chain reorganises back before batch 6..9 ...
    mine(node, 5)  # ... and grows past the block that held it, without it
    assert chain.last_anchored_seq() == a
    coop.post(2)  # entries keep coming meanwhile: the dropped range is still anchored as it was
    report = settle()
    assert report.dropped == 1 and report.sent == 2 and report.anchored_through == b + 2
    dropped = [r for r in job.batches() if r["status"] == "dropped"]
    assert [(r["first_seq"], r["last_seq"], r["id"]) for r in dropped] == [(a + 1, b, before["id"])]
    again = row(job, a + 1, "confirmed")
    assert (again["last_seq"], again["root"]) == (b, before["root"])  # the same range, the same root
    assert again["nonce"] == before["nonce"] and again["block_hash"] != before["block_hash"]
    assert chain.find_batch(a + 1).root == before["root"] and chain.is_anchored_on_chain(before["root"], a + 1, b)
    assert [(e.first_seq, e.last_seq) for e in chain.anchored_events()] == [(1, a), (a + 1, b), (b + 1, b + 2)]
    # the receipt issued before the reorg still verifies, independently, against the chain
    ok = cli("ayni-wallet", "verify", receipt, "--chain", node, "--contract", chain.contract_address,
             "--chain-id", HARDHAT_CHAIN_ID)
    assert ok.returncode == 0 and ok.stdout.startswith(f"OK: entry {b - 1}"), ok.stdout + ok.stderr


def test_reorg_shallower_than_confirmations_never_confirms_and_anchors_again(node, chain, coop):
    coop.post(3)
    job = Anchoring(coop.ledger, chain, confirmations=3)
    rpc(node, "evm_setAutomine", [False])
    snapshot = rpc(node, "evm_snapshot")
    assert job.anchor_next(AnchorReport())
    mine(node)  # mined: 1 confirmation of the 3 wanted
    report = AnchorReport()
    job.reconcile(report)
    first = row(job, 1)
    assert report.pending and first["status"] == "pending" and first["block"] is None

    rpc(node, "evm_revert", [snapshot])  # the block holding it is gone, and the transaction with it
    mine(node, 3)
    statuses = []
    for _ in range(8):
        report = job.run(wait_s=0.1)
        statuses.append(report.anchored_through)
        mine(node)
    assert statuses[-1] == coop.ledger.head()[0]
    assert row(job, 1, "failed")["error"].startswith("never reached the chain")  # never confirmed
    assert [b["status"] for b in job.batches()] == ["failed", "confirmed"]
    assert row(job, 1, "confirmed")["nonce"] == first["nonce"]  # the same nonce: never two landing
    assert chain.find_batch(1).root == first["root"]


# -- presets, estimate, balance -----------------------------------------------------------------

def test_presets_name_their_chains_and_sources():
    presets = P.load()
    assert {"gnosis", "base", "optimism", "arbitrum", "sepolia", "hardhat"} <= set(presets)
    assert {(p.name, p.chain_id) for p in presets.values()} >= {
        ("gnosis", 100), ("base", 8453), ("optimism", 10), ("arbitrum", 42161), ("sepolia", 11155111),
        ("hardhat", 31337)}
    assert len({p.chain_id for p in presets.values()}) == len(presets)
    for p in presets.values():
        assert p.sources.get("chain_id") and p.sources.get("typical_fee_gwei") and p.note
        assert 1 <= p.confirmations <= p.recheck_blocks and p.typical_fee_gwei < p.suggested_max_fee_gwei
    assert P.get("OP-Mainnet").chain_id == 10 and P.get("Gnosis").native == "xDAI"
    with pytest.raises(P.UnknownPreset, match="known: arbitrum, base"):
        P.get("polygon")
    with pytest.raises(P.WrongChain, match="chain id 100, but .* reports chain id 31337 \\(hardhat\\)"):
        P.get("gnosis").check_chain_id(31337)


@pytest.fixture
def deployed(node, coop, tmp_path):
    keystore, password = tmp_path / "anchor.json", tmp_path / "pass.txt"
    password.write_text("correct horse\n")
    write_keystore(str(keystore), HARDHAT_KEYS[0], "correct horse", scrypt_n=2**4)
    c = AnchorChain.connect(node, private_key=HARDHAT_KEYS[0])
    contract, _ = c.deploy(admin=address_of_key(HARDHAT_KEYS[1]))
    coop.post(7)
    return {"args": ["--db", coop.url, "--chain", node, "--contract", contract, "--keystore", keystore,
                     "--password-file", password], "chain": c, "keystore": keystore, "coop": coop}


def test_cli_refuses_a_node_on_another_chain_than_the_preset(deployed):
    r = cli("ayni", "anchor", *deployed["args"], "--chain-preset", "gnosis")
    assert r.returncode == 1 and "wrong_chain" in r.stderr and "31337" in r.stderr and "Traceback" not in r.stderr
    assert Anchoring(deployed["coop"].ledger, deployed["chain"]).batches() == []
    r = cli("ayni", "anchor", *deployed["args"], "--max-fee-gwei", "cheap")
    assert r.returncode == 1 and "invalid fee" in r.stderr and "Traceback" not in r.stderr
    r = cli("ayni", "anchor", *deployed["args"], "--json", env_extra={"AYNI_CHAIN_PRESET": "hardhat",
                                                                      "AYNI_MAX_FEE_GWEI": "50"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["anchored_through"] == deployed["coop"].ledger.head()[0]


def test_estimate_prices_the_next_batch_without_sending(deployed, tmp_path):
    chain = deployed["chain"]
    nonce = tx_count(chain)
    prices = json.loads((ROOT / "ledger/costs/prices.json").read_text())
    prices["eur_per_usd"] = {"value": 0.5, "as_of": "2026-11-29", "source": "test rate"}
    prices["eur_usd"] = {"value": 2.0, "as_of": "2026-11-29", "source": "test rate"}  # the same rate, inverted
    (tmp_path / "prices.json").write_text(json.dumps(prices))
    args = [a for a in deployed["args"] if a not in ("--keystore", deployed["keystore"])]
    r = cli("ayni", "anchor", "--estimate", *args, "--chain-preset", "hardhat", "--max-fee-gwei", "30",
            "--prices", tmp_path / "prices.json", "--json")
    assert r.returncode == 0, r.stderr
    est = json.loads(r.stdout)
    head = deployed["coop"].ledger.head()[0]
    assert (est["first_seq"], est["last_seq"], est["entries"]) == (1, head, head)
    assert est["gas_source"] == "eth_estimateGas" and 21_000 < est["gas"] <= 31_500
    assert est["likely_wei"] == est["gas"] * (est["base_fee_wei"] + est["tip_wei"])
    assert est["worst_wei"] == est["gas"] * est["max_fee_wei"] and est["max_fee_wei"] <= 30 * GWEI
    eur = est["likely_wei"] / 10**18 * prices["eth_usd"]["value"] * 0.5
    assert abs(float(est["eur_likely"]) - eur) < 1e-6 and est["native"] == "ETH"
    text = cli("ayni", "anchor", "--estimate", *args, "--max-fee-gwei", "30")
    assert text.returncode == 0, text.stderr
    assert f"next batch: entries 1..{head} ({head} entries)" in text.stdout and " ETH likely, at most " in text.stdout
    assert " = EUR " in text.stdout  # the shipped price file holds a EUR rate (eur_per_usd)
    assert tx_count(chain) == nonce and Anchoring(deployed["coop"].ledger, chain).batches() == []


def test_key_balance_for_doctor_and_metrics_and_the_low_balance_warning(node, deployed):
    chain = deployed["chain"]
    expected = int(rpc(node, "eth_getBalance", [chain.sender, "latest"]), 16)
    assert keystore_address(deployed["keystore"]).lower() == chain.sender.lower()
    assert anchor_key_balance_wei(node, keystore=deployed["keystore"]) == expected
    assert anchor_key_balance_wei(node, address=chain.sender) == chain.key_balance_wei() == expected
    from ledger.chain import ChainUnavailable
    with pytest.raises(ChainUnavailable):
        anchor_key_balance_wei("http://127.0.0.1:9", address=chain.sender, timeout=1)

    job = Anchoring(deployed["coop"].ledger, chain)
    report = job.run(wait_s=10)
    assert report.anchored_through == deployed["coop"].ledger.head()[0] and report.key_balance_wei == chain.key_balance_wei()
    quote = chain.fee_quote()
    assert report.batches_affordable == batches_affordable(report.key_balance_wei, quote.likely,
                                                           max(report.gas_used))
    assert not report.warnings  # 10,000 test ether pays for millions of anchors
    deployed["coop"].post(1)
    r = cli("ayni", "anchor", *deployed["args"], "--warn-batches", str(10**12))
    assert r.returncode == 0, r.stderr
    assert "WARN: the anchoring key " in r.stderr and "fewer than 1000000000000; top it up" in r.stderr


# -- review fixes: ranges, nonces, following, deadlines, deep reorgs, settings -------------------

def test_a_dropped_range_survives_a_failed_re_anchor(node, chain, coop):
    """H1: the re-anchor of a dropped batch is itself lost (evicted); the next attempt still sends
    the dropped range, never a wider one: receipts were issued for it."""
    coop.post(3)
    job = Anchoring(coop.ledger, chain, confirmations=1, recheck_blocks=64)
    rpc(node, "evm_setAutomine", [False])
    snapshot = rpc(node, "evm_snapshot")
    assert job.anchor_next(AnchorReport())
    mine(node, 2)
    assert job.run(wait_s=0.1).confirmed == 1
    confirmed = row(job, 1)
    rpc(node, "evm_revert", [snapshot])
    mine(node, 4)
    coop.post(2)  # entries keep coming: a fresh range would now be wider
    report = AnchorReport()
    job.reconcile(report)
    assert report.dropped == 1 and job.anchor_next(AnchorReport())
    resend = row(job, 1, "pending")
    rpc(node, "hardhat_dropTransaction", [resend["tx_hash"]])  # the re-anchor vanishes from the pool
    report = AnchorReport()
    job.reconcile(report)
    assert report.failed == 1
    assert job.anchor_next(AnchorReport())
    again = row(job, 1, "pending")
    assert (again["last_seq"], again["root"], again["nonce"]) == (confirmed["last_seq"], confirmed["root"],
                                                                  confirmed["nonce"])
    mine(node)
    assert job.run(wait_s=0.5).anchored_through == confirmed["last_seq"]
    assert [(e.first_seq, e.last_seq, e.root) for e in chain.anchored_events()] == [
        (1, confirmed["last_seq"], confirmed["root"])]


def test_a_resend_at_a_reused_nonce_keeps_the_range_and_adopts_our_own_batch(node, chain, coop):
    """H2 + L3: a failed batch is sent again with its own range at the same nonce (no bump when
    the node knows no transaction there); and a batch of our own log landed with another range
    at that seq (a replacement sent before a crash) is adopted with its range and nonce."""
    coop.post(3)
    job = Anchoring(coop.ledger, chain)
    rpc(node, "evm_setAutomine", [False])
    assert job.anchor_next(AnchorReport())
    first = row(job, 1)
    rpc(node, "hardhat_dropTransaction", [first["tx_hash"]])
    job.reconcile(AnchorReport())
    coop.post(2)
    assert job.anchor_next(AnchorReport())
    second = row(job, 1, "pending")
    assert (second["last_seq"], second["root"], second["nonce"]) == (first["last_seq"], first["root"], first["nonce"])
    rpc(node, "hardhat_dropTransaction", [second["tx_hash"]])
    job.reconcile(AnchorReport())  # failed again: now the crash case below
    # a replacement for 1..head-1 was sent, then the process died before recording it; the row
    # written before that crash names 1..head and no nonce
    head = coop.ledger.head()[0]
    narrow = job.tree(1, head - 1).root
    sent = chain.send_anchor_tx(narrow, 1, head - 1, nonce=first["nonce"])
    mine(node)
    job._record(1, head, job.tree(1, head).root, "sending")
    report = AnchorReport()
    job.reconcile(report)  # the old code stopped here: "the chain holds a different batch"
    adopted = row(job, 1, "pending")
    assert report.adopted == 1 and (adopted["last_seq"], adopted["root"]) == (head - 1, narrow)
    assert adopted["tx_hash"] == sent.tx_hash and adopted["nonce"] == first["nonce"]
    mine(node)
    rpc(node, "evm_setAutomine", [True])
    report = job.run(wait_s=5)
    assert report.anchored_through == head
    assert [(e.first_seq, e.last_seq) for e in chain.anchored_events()] == [(1, head - 1), (head, head)]
    assert job._scan_from(head) == row(job, 1, "confirmed")["block"]  # M4: no scan from block 0


def test_watch_follows_a_batch_still_pending_when_a_round_ends(node, chain, coop):
    """H3: no new entries, yet the watch loop confirms the batch once its confirmations come."""
    import threading

    from ledger.anchoring import watch
    coop.post(2)
    job = Anchoring(coop.ledger, chain, confirmations=3)
    rpc(node, "evm_setAutomine", [False])
    assert job.anchor_next(AnchorReport())
    stop = threading.Event()
    reports = []
    t = threading.Thread(target=watch, kwargs={"job": job, "interval": 0.1, "min_entries": 1, "stop": stop,
                                               "on_report": reports.append, "on_error": reports.append}, daemon=True)
    t.start()
    try:
        mine(node, 4)
        for _ in range(50):
            if row(job, 1)["status"] == "confirmed":
                break
            stop.wait(0.1)
    finally:
        stop.set()
        t.join(10)
    assert row(job, 1)["status"] == "confirmed" and any(r.confirmed for r in reports if hasattr(r, "confirmed"))


def test_a_crash_at_the_fee_cap_is_sent_fresh_when_the_node_knows_no_transaction(node, chain, coop):
    """M1: the row was written at the cap, the process died before sending; fees then fell. The
    node's pending count shows nothing at that nonce: a fresh quote is sent, not a bump over the cap."""
    coop.post(3)
    nonce = tx_count(chain)
    crashed = Anchoring(coop.ledger, chain, max_fee_per_gas=20 * GWEI)
    head = coop.ledger.head()[0]
    crashed._record(1, head, crashed.tree(1, head).root, "sending", nonce=nonce, max_fee_per_gas=20 * GWEI,
                    priority_fee_per_gas=GWEI, attempts=1)
    mine(node, base_fee_gwei=1)
    job = Anchoring(coop.ledger, chain, max_fee_per_gas=20 * GWEI, priority_fee=GWEI, sending_grace_ms=0)
    report = job.run(wait_s=10)
    assert report.postponed is None and report.anchored_through == head
    assert row(job, 1, "confirmed")["nonce"] == nonce and tx_count(chain) == nonce + 1


def test_deadline_warning_while_a_batch_is_stuck_above_the_max(node, chain, coop):
    """M2: the batch is in the pool, not on chain: its entries count as waiting."""
    coop.post(3)
    start = min(e.at for e in coop.ledger.iter_entries())
    clock = {"ms": start}
    job = Anchoring(coop.ledger, chain, max_fee_per_gas=20 * GWEI, priority_fee=GWEI, replace_after_s=0,
                    clock=lambda: clock["ms"])
    rpc(node, "evm_setAutomine", [False])
    assert job.anchor_next(AnchorReport())
    mine(node, base_fee_gwei=30)
    clock["ms"] = start + 20 * 3600 * 1000
    report = job.run(wait_s=0.5)  # many passes while it waits: one warning
    assert "stuck" in report.postponed
    (warning,) = [w for w in report.warnings if w.startswith("anchoring deadline")]
    assert "entry 1 has waited 20 h" in warning and "passes in 4 h" in warning


def test_a_reorg_deeper_than_the_recheck_window_drops_and_re_anchors(node, chain, coop):
    """L1: the chain lost a batch recorded confirmed, beyond the window: it is dropped (no more
    receipts), the operator is told, and the same range is anchored again."""
    from ledger.core import errors as E
    coop.post(3)
    job = Anchoring(coop.ledger, chain, confirmations=1, recheck_blocks=2)
    snapshot = rpc(node, "evm_snapshot")
    assert job.run(wait_s=5).confirmed == 1
    head = coop.ledger.head()[0]
    before = row(job, 1)
    rpc(node, "evm_revert", [snapshot])
    rpc(node, "evm_setAutomine", [False])
    mine(node, 6)  # past the 2-block window: the per-pass re-check no longer looks at it
    report = AnchorReport()
    job.reconcile(report)  # no new entry: the pass alone finds it
    assert report.dropped == 1 and any("deeper than the re-check window (2 blocks)" in w for w in report.warnings)
    assert job.anchor_next(AnchorReport())
    with pytest.raises(E.LedgerError, match="still pending"):
        job.receipt(head)  # the chain no longer holds the batch: no receipt until it is anchored again
    again = row(job, 1, "pending")
    assert (again["last_seq"], again["root"]) == (before["last_seq"], before["root"])
    mine(node)
    assert job.run(wait_s=5).anchored_through == head and job.receipt(head)["root"] == "0x" + before["root"].hex()


def test_anchor_settings_refusals_and_serve_env(deployed, monkeypatch):
    """L2, L4, L5, L7, L9 through the CLI; L6, L8, L10 on the helpers."""
    args = deployed["args"]
    r = cli("ayni", "anchor", *args, "--confirmations", "5", "--recheck-blocks", "2")
    assert r.returncode == 1 and "above --recheck-blocks 2" in r.stderr and "Traceback" not in r.stderr
    r = cli("ayni", "anchor", *args, "--priority-fee-gwei", "10000000000")
    assert r.returncode == 1 and "invalid fee" in r.stderr and "Traceback" not in r.stderr
    r = cli("ayni", "anchor", *args, "--json", env_extra={"AYNI_MAX_FEE_GWEI": ""})
    assert r.returncode == 1 and "AYNI_MAX_FEE_GWEI is set but empty" in r.stderr
    r = cli("ayni", "anchor", *args, "--priority-fee-gwei", "0", "--json")
    assert r.returncode == 0, r.stderr
    (b,) = Anchoring(deployed["coop"].ledger, deployed["chain"]).batches()
    assert b["priority_fee_per_gas"] == 0 and deployed["chain"].w3.eth.get_transaction(b["tx_hash"])[
        "maxPriorityFeePerGas"] == 0

    from ledger.cli.anchoring import anchor_settings, anchor_settings_from_env
    for k, v in {"AYNI_REPLACE_AFTER_S": "60", "AYNI_MAX_REPLACEMENTS": "2", "AYNI_RECHECK_BLOCKS": "32",
                 "AYNI_ANCHOR_DEADLINE": "3600", "AYNI_WARN_BATCHES": "7"}.items():
        monkeypatch.setenv(k, v)
    got = anchor_settings_from_env(deployed["chain"])
    assert (got["replace_after_s"], got["max_replacements"], got["recheck_blocks"], got["deadline_s"],
            got["warn_batches"]) == (60.0, 2, 32, 3600, 7)

    class Base:  # a chain adapter's two attributes anchor_settings reads, on Base's chain id
        chain_id, fallback_tip = 8453, 10**9
    base = Base()
    anchor_settings(base, chain_preset="base", max_fee_gwei=None, priority_fee_gwei=None, confirmations=None,
                    recheck_blocks=None)
    assert base.fallback_tip == F.to_wei_per_gas("0.001")  # never 1 gwei against a 0.1 gwei max
    assert F.gwei(10**39) == "1" + "0" * 30 and F.gwei(1_500_000_001) == "1.500000001"
    from ledger.chain import ChainError
    with pytest.raises(ChainError, match="reports chain id 31337, not 100"):
        anchor_key_balance_wei(deployed["chain"].w3.provider.endpoint_uri, address=deployed["chain"].sender,
                               expected_chain_id=100)


def test_sending_a_transaction_the_pool_already_holds_is_a_send(node, chain, coop):
    """A crash after a replacement was sent but before it was recorded: the restarted anchorer
    may sign the very same transaction; the node's "known transaction" means it is in the pool."""
    from ledger.chain.types import FeeQuote
    coop.post(2)
    job = Anchoring(coop.ledger, chain)
    head = coop.ledger.head()[0]
    root, nonce = job.tree(1, head).root, tx_count(chain)
    fees = FeeQuote(True, GWEI, GWEI, 3 * GWEI)
    rpc(node, "evm_setAutomine", [False])
    first = chain.send_anchor_tx(root, 1, head, fees=fees, nonce=nonce)
    again = chain.send_anchor_tx(root, 1, head, fees=fees, nonce=nonce)
    assert again == first
    mine(node)
    assert chain.tx_status(first.tx_hash).status == "confirmed"


def test_recovery_searches_for_a_batch_from_its_row_not_from_block_0(node, chain, coop):
    """M4: an unknown transaction's batch is searched for from about when its row was written
    (a binary search by block time), not from block 0: on a public chain with tens of millions
    of blocks that is thousands of eth_getLogs calls a public RPC rate-limits into a failed pass."""
    coop.post(2)
    rpc(node, "hardhat_mine", [hex(20_000)])  # a longer chain (blocks 1 s apart)
    head = chain.block_number()
    head_ts = chain.w3.eth.get_block("latest")["timestamp"]
    cli_style = AnchorChain.connect(node, private_key=HARDHAT_KEYS[0], contract_address=chain.contract_address)
    assert cli_style.start_block == 0
    job = Anchoring(coop.ledger, cli_style, clock=lambda: head_ts * 1000)  # the operator's clock, the chain's
    last = coop.ledger.head()[0]
    job._record(1, last, job.tree(1, last).root, "sending")  # written, sent, then a crash before recording
    sent = cli_style.send_anchor_tx(job.tree(1, last).root, 1, last)
    assert head - 3700 <= job._scan_from(1) <= head  # from an hour before the row, not block 0
    report = AnchorReport()
    job.reconcile(report)
    assert report.adopted == 1 and row(job, 1)["tx_hash"] == sent.tx_hash
