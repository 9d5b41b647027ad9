"""ayni cost-report: measured gas is what the contracts really use, the arithmetic is right,
the price file is validated with clear errors, and the CLI writes JSON, CSV and a PNG."""
from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import math
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from ledger import signing
from ledger.anchoring import DEFAULT_MAX_BATCH, Anchoring
from ledger.chain import AnchorChain
from ledger.core.typed_data import Domain, Transfer, address_of_key, sign_action
from ledger.costs import demo_cost_summary, model, report
from ledger.costs.measure import (CRED, NO_CEILING, TX_KINDS, GasFigures, Measurements, OffChain, _community,
                                  _signed, artifact, measure_erc20, measure_mutual_credit, measure_postgres,
                                  measure_sqlite, relay_signature)
from ledger.costs.prices import DEFAULT_FILE, PricesError, load, parse, with_overrides

BIN = Path(sys.executable).parent
SSTORE_NEW_SLOT_EXTRA = 20_000 - 2_900  # EIP-2200/2929: zero -> non-zero vs non-zero -> non-zero


def ayni(*args):
    return subprocess.run([str(BIN / "ayni"), *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "COLUMNS": "120"})


# --------------------------------------------------------------------------- prices


def test_shipped_price_file_is_valid_and_every_value_is_dated_and_sourced():
    raw = json.loads(DEFAULT_FILE.read_text())
    prices = load()
    assert {s.name for s in prices.scenarios} >= {"l1-2025", "l2-op-stack", "gnosis"}
    dated = [prices.eth_usd, prices.hosting.vm_usd, prices.hosting.pg_usd, prices.hosting.cpu_utilisation,
             prices.hosting.pg_extra_storage_usd_per_gib_month, prices.hosting.small_vm.eur, prices.hosting.eur_usd]
    for s in prices.scenarios:
        dated += [s.gas_price_gwei, s.native_usd] + ([s.l1_data_fee_eth_per_byte] if s.l1_data_fee_eth_per_byte else [])
    assert prices.scenario("l2-op-stack").l1_data_fee_eth_per_byte.value > 0
    for d in dated:
        assert dt.date.fromisoformat(d.as_of) <= dt.date.today()
        assert len(d.source) > 20
    assert raw["scenarios"][0]["gas_price_gwei"]["value"] == prices.scenarios[0].gas_price_gwei.value


def _mutate(fn):
    data = json.loads(DEFAULT_FILE.read_text())
    fn(data)
    return data


@pytest.mark.parametrize("mutation, message", [
    (lambda d: d.pop("eth_usd"), ".eth_usd is missing"),
    (lambda d: d.update(schema="other/9"), "schema must be"),
    (lambda d: d["eth_usd"].update(value="3000"), ".eth_usd.value must be a non-negative number"),
    (lambda d: d["eth_usd"].update(value=-1), ".eth_usd.value must be a non-negative number"),
    (lambda d: d["eth_usd"].update(as_of="last week"), ".eth_usd.as_of must be a date YYYY-MM-DD"),
    (lambda d: d["eth_usd"].pop("source"), ".eth_usd.source is missing"),
    (lambda d: d["scenarios"][1]["gas_price_gwei"].update(value=0), ".scenarios[1].gas_price_gwei.value must be greater than 0"),
    (lambda d: d["scenarios"][0].update(kind="moon"), ".scenarios[0].kind must be one of"),
    (lambda d: d["scenarios"].append(copy.deepcopy(d["scenarios"][0])), "appears twice"),
    (lambda d: d["scenarios"][4].pop("native_usd"), ".scenarios[4].native_usd is missing"),
    (lambda d: d.update(scenarios=[]), ".scenarios must be a non-empty list"),
    (lambda d: d["hosting"]["vm"].update(vcpus=0), ".hosting.vm.vcpus must be a positive integer"),
    (lambda d: d["hosting"]["cpu_utilisation"].update(value=1.5), "fraction between 0 and 1"),
    (lambda d: d["eth_usd"].update(price=1), "unknown field"),
    (lambda d: d["eth_usd"].update(value=1e308), ".eth_usd.value is implausibly large"),
    (lambda d: d.update(schema="ayni.cost-prices/1"), "version 2 has l1_data_fee_eth_per_byte"),
    (lambda d: d["scenarios"][3].update(l1_data_fee_usd_per_tx=d["eth_usd"]), "l1_data_fee_usd_per_tx is gone"),
    (lambda d: d["scenarios"][4].update(l1_data_fee_eth_per_byte=d["eth_usd"]), "needs a scenario paid in ETH"),
    (lambda d: d["hosting"]["managed_postgres"].pop("extra_storage_usd_per_gib_month"),
     ".hosting.managed_postgres.extra_storage_usd_per_gib_month is missing"),
    (lambda d: d["hosting"].pop("small_vm"), ".hosting.small_vm is missing"),
    (lambda d: d["hosting"]["small_vm"].update(vcpus=0), ".hosting.small_vm.vcpus must be a positive integer"),
    (lambda d: d["hosting"]["small_vm"]["eur_per_month"].update(as_of="2025"), "small_vm.eur_per_month.as_of"),
    (lambda d: d.pop("eur_usd"), ".eur_usd is missing"),
])
def test_malformed_price_file_is_refused_with_a_clear_message(mutation, message):
    with pytest.raises(PricesError) as info:
        parse(_mutate(mutation))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_or_invalid_json_price_file(tmp_path):
    with pytest.raises(PricesError, match="cannot read price file"):
        load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PricesError, match="is not valid JSON"):
        load(bad)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b"\xff\xfe{}")
    with pytest.raises(PricesError, match="is not UTF-8 text"):
        load(latin)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(PricesError, match="nested too deeply"):
        load(deep)


def test_overrides_reprice_eth_and_replace_l1_scenarios():
    p = with_overrides(load(), eth_usd=2000, gas_price_gwei=10, vm_usd=5, only=None)
    l1 = [s for s in p.scenarios if s.kind == "ethereum-l1"]
    assert [(s.name, s.gas_price_gwei.value, s.native_usd.value) for s in l1] == [("l1-custom", 10, 2000)]
    assert l1[0].gas_price_gwei.source == "command-line override"
    assert p.scenario("l2-op-stack").native_usd.value == 2000
    assert p.scenario("gnosis").native_usd.value == 1.0  # xDAI is not repriced by --eth-usd
    assert p.hosting.vm_usd.value == 5
    with pytest.raises(PricesError, match="unknown price scenario"):
        with_overrides(load(), only=["nowhere"])
    with pytest.raises(PricesError, match="--eth-usd must be"):
        with_overrides(load(), eth_usd=-5)


# --------------------------------------------------------------------------- arithmetic

def _gas(**over) -> GasFigures:
    base = dict(anchor=30_000, anchor_calls=[30_000], anchor_deploy=1, mc_deploy=1, mc_add_currency=1,
                mc_open_account=80_000, mc_set_limit=1, mc_freeze=1, mc_transfer_first=36_000,
                mc_transfer_repeat=36_000, mc_transfer_sig_new_word=67_000, mc_transfer_sig_same_word=49_000,
                erc20_deploy=1, erc20_transfer_new_holder=51_000, erc20_transfer_existing=34_000, eth_funding=21_000,
                tx_bytes={k: {"calldata": 0, "signed": 100 + i} for i, k in enumerate(TX_KINDS)})
    return GasFigures(**{**base, **over})


def _prices():
    data = _mutate(lambda d: None)
    data["eth_usd"]["value"] = 2000
    data["scenarios"] = [
        {"name": "l1", "label": "L1", "kind": "ethereum-l1", "native": "ETH",
         "gas_price_gwei": {"value": 10, "as_of": "2026-01-01", "source": "test value"}},
        {"name": "l2", "label": "L2", "kind": "l2", "native": "ETH",
         "gas_price_gwei": {"value": 0.01, "as_of": "2026-01-01", "source": "test value"},
         "l1_data_fee_eth_per_byte": {"value": 1e-8, "as_of": "2026-01-01", "source": "test value"}}]
    data["hosting"]["vm"]["usd_per_month"]["value"] = 20
    data["hosting"]["vm"]["vcpus"] = 2
    data["hosting"]["managed_postgres"]["usd_per_month"]["value"] = 15
    data["hosting"]["cpu_utilisation"]["value"] = 0.5
    data["hosting"]["managed_postgres"]["storage_gib"] = 10
    data["hosting"]["managed_postgres"]["extra_storage_usd_per_gib_month"]["value"] = 0.25
    return parse(data)


def test_monthly_cost_arithmetic_by_hand():
    prices, gas = _prices(), _gas()
    w = model.Workload("t", members=1_000, transfers_per_member=5, anchor_every_hours=24, growth=0.02)
    assert (w.transfers_per_month, w.new_members_per_month) == (5_000, 20)
    assert w.anchors_per_month == pytest.approx(730 / 24)  # 168 entries a day: one batch a day
    # 1 ms of CPU per transfer: a 2-vCPU VM at 50% = 2 * 2,628,000 s * 0.5 / 0.001 transfers a month
    hosted, rows = model.costs(w, prices, gas, cpu_s_per_transfer=0.001, db_bytes_per_transfer=1024)
    assert hosted.transfers_per_vm_month == pytest.approx(2_628_000_000)
    assert hosted.vms == 1
    assert hosted.storage_gib_per_year == pytest.approx(5_000 * 12 * 1024 / 2**30)
    assert hosted.storage_usd_per_month == 0  # 0.06 GiB a year: far inside the 10 GiB included
    c = {(r.scenario, r.mode): r for r in rows}
    usd_gas_l1 = 10e-9 * 2000  # USD per gas unit at 10 gwei and $2,000
    b = {k: v["signed"] for k, v in gas.tx_bytes.items()}
    assert c[("l1", "hosting")].monthly_usd == pytest.approx(35)
    assert c[("l1", "anchored")].monthly_usd == pytest.approx(35 + 730 / 24 * 30_000 * usd_gas_l1)
    # mc-direct: transfers + new members (open + first ETH) + every member's monthly ETH top-up
    assert c[("l1", "mc-direct")].monthly_usd == pytest.approx(
        (5_000 * 36_000 + 20 * (80_000 + 21_000) + 1_000 * 21_000) * usd_gas_l1)
    assert c[("l1", "mc-direct")].topups_usd == pytest.approx(1_000 * 21_000 * usd_gas_l1)
    # relayed: Ayni's random nonces open a new bitmap word every time (67,000), + the relayer's VM
    assert c[("l1", "mc-relayed")].monthly_usd == pytest.approx((5_000 * 67_000 + 20 * 80_000) * usd_gas_l1 + 20)
    assert c[("l1", "mc-relayed")].hosting_usd == 20
    assert c[("l1", "erc20")].monthly_usd == pytest.approx(
        (5_000 * 34_000 + 20 * (51_000 + 21_000) + 1_000 * 21_000) * usd_gas_l1)
    # one-time migration: deploy (+ two currencies) and open every existing member
    assert c[("l1", "mc-direct")].one_time_usd == pytest.approx((1 + 2 * 1 + 1_000 * (80_000 + 21_000)) * usd_gas_l1)
    assert c[("l1", "mc-relayed")].one_time_usd == pytest.approx((1 + 2 * 1 + 1_000 * 80_000) * usd_gas_l1)
    assert c[("l1", "erc20")].one_time_usd == pytest.approx((1 + 1_000 * (51_000 + 21_000)) * usd_gas_l1)
    assert c[("l1", "anchored")].one_time_usd == pytest.approx(1 * usd_gas_l1)
    assert c[("l1", "hosting")].one_time_usd == 0
    assert all(r.excluded for r in rows if r.mode in ("mc-direct", "mc-relayed", "erc20"))
    assert not any(r.excluded for r in rows if r.mode in ("hosting", "anchored"))
    # a rollup adds its L1 data fee: signed bytes x ETH per byte x ETH price, per transaction
    usd_gas_l2, per_byte = 0.01e-9 * 2000, 1e-8 * 2000
    fee = lambda kind: b[kind] * per_byte  # noqa: E731
    assert c[("l2", "mc-direct")].monthly_usd == pytest.approx(
        5_000 * (36_000 * usd_gas_l2 + fee("mc_transfer"))
        + 20 * (80_000 * usd_gas_l2 + fee("mc_open_account") + 21_000 * usd_gas_l2 + fee("eth_funding"))
        + 1_000 * (21_000 * usd_gas_l2 + fee("eth_funding")))
    assert c[("l2", "anchored")].monthly_usd == pytest.approx(35 + 730 / 24 * (30_000 * usd_gas_l2 + fee("anchor")))
    assert c[("l2", "mc-relayed")].transfers_usd == pytest.approx(5_000 * (67_000 * usd_gas_l2 + fee("mc_transfer_sig")))
    # the ETH price override scales the data fee too
    cheap = with_overrides(prices, eth_usd=1000)
    assert cheap.scenario("l2").data_fee_usd(b["anchor"]) == pytest.approx(fee("anchor") / 2)


def test_relayed_nonces_random_by_default_sequential_only_when_asked():
    gas = _gas()
    assert model.relayed_gas(gas) == 67_000
    assert model.relayed_gas(gas, "sequential") == pytest.approx(49_000 + (67_000 - 49_000) / 256)
    with pytest.raises(ValueError, match="nonces must be one of"):
        model.relayed_gas(gas, "counter")
    assert "random nonces" in model.mode_labels()["mc-relayed"]
    assert "SEQUENTIAL" in model.mode_labels("sequential")["mc-relayed"]
    # Ayni's signer really draws random 128-bit nonces: two payments almost never share a word
    words = {signing.new_nonce() >> 8 for _ in range(200)}
    assert len(words) == 200


def test_anchors_follow_the_real_anchorer_batches():
    # federation: ~1,371 entries an hour with max batch 1,000 -> 2 transactions an hour
    fed = model.PRESETS["federation"]
    assert DEFAULT_MAX_BATCH == 1000
    per_interval = fed.entries_per_month / 730
    assert 1000 < per_interval < 2000
    assert fed.anchors_per_month == pytest.approx(730 * 2)
    # volume matters: ten times the transfers, ten-ish times the anchors at one interval
    big = model.Workload("big", 100_000, 100, 1, 0.01)
    assert big.anchors_per_month == pytest.approx(730 * math.ceil((10_000_000 + 1_000) / 730 / 1000))
    # quiet: never more anchors than entries
    quiet = model.Workload("quiet", members=2, transfers_per_member=1, anchor_every_hours=1, growth=0)
    assert quiet.anchors_per_month == 2


def test_anchorer_sends_the_batches_the_model_counts(tmp_path):
    """ledger.anchoring with its default max batch, on a real log of 1,000 < n < 2,000 entries in one
    interval, sends exactly the two transactions the model prices for such an interval."""
    ledger, domain, keys = _community(f"sqlite:///{tmp_path / 'a.db'}", 8)
    subs = _signed(domain, keys, 1_050)
    for i in range(0, len(subs), 200):  # one batch of 1,050 is too deep an SQL expression for SQLite
        ledger.submit_many(subs[i:i + 200])
    head, _ = ledger.head()
    chain = AnchorChain.embedded()
    chain.deploy()
    sent = Anchoring(ledger, chain).run()
    ledger.engine.dispose()
    w = model.Workload("one interval", members=1, transfers_per_member=head, anchor_every_hours=730, growth=0)
    assert len(sent.gas_used) == w.anchors_per_month == 2


def test_storage_beyond_the_plan_is_charged_over_the_first_year():
    prices = _prices()
    # 2 GiB a month: months 6..12 exceed 10 GiB by 2, 4, ..., 14 GiB -> 56 GiB-months over 12 months
    assert model.storage_usd_per_month(2, 10, 0.25) == pytest.approx(56 / 12 * 0.25)
    w = model.Workload("t", members=1_000_000, transfers_per_member=2, anchor_every_hours=24, growth=0)
    bytes_per_transfer = 2 * 2**30 / w.transfers_per_month
    hosted, rows = model.costs(w, prices, _gas(), cpu_s_per_transfer=1e-6, db_bytes_per_transfer=bytes_per_transfer)
    assert hosted.storage_usd_per_month == pytest.approx(56 / 12 * 0.25)
    hosting = next(r for r in rows if (r.scenario, r.mode) == ("l1", "hosting"))
    assert hosting.monthly_usd == pytest.approx(20 + 15 + 56 / 12 * 0.25)


def test_hosting_uses_postgres_figures_when_measured():
    gas = _gas()
    sq = OffChain("sqlite", 100, 0.0003, 0.0004, 1_300)
    pg = OffChain("postgresql", 100, 60.0, 61.0, 2**30 / 10_000)  # absurdly slow: 3 VMs
    w = model.Workload("t", members=10_000, transfers_per_member=10, anchor_every_hours=24, growth=0)
    with_pg = report.build(w, _prices(), Measurements(gas, [sq, pg], 1.0))
    assert with_pg["derived"]["hosting_figures_from"] == "postgresql"
    assert with_pg["derived"]["vms"] == math.ceil(100_000 * 60 / (2 * model.SECONDS_PER_MONTH * 0.5)) == 3
    assert with_pg["derived"]["db_gib_per_year"] == pytest.approx(120)
    skipped = OffChain("postgresql", 0, skipped="not measured")
    without = report.build(w, _prices(), Measurements(gas, [sq, skipped], 1.0))
    assert without["derived"]["hosting_figures_from"] == "sqlite" and without["derived"]["vms"] == 1


def test_vm_count_grows_with_measured_cpu_and_anchors_need_entries():
    prices, gas = _prices(), _gas()
    big = model.Workload("big", members=1_000_000, transfers_per_member=100, anchor_every_hours=1, growth=0)
    hosted, rows = model.costs(big, prices, gas, cpu_s_per_transfer=0.01, db_bytes_per_transfer=1)
    # 1e8 transfers * 0.01 s = 1e6 CPU s; one VM gives 2,628,000 * 0.5 * 2 = 2,628,000 s -> 1 VM; 0.05 s -> 2 VMs
    assert hosted.vms == 1
    assert model.hosting_needs(big, prices, 0.05, 1).vms == 2


@pytest.mark.parametrize("args, message", [
    (("bad", 10, 1, 0, 0), "anchor interval"),
    (("bad", 10, 1, 1e-300, 0), "anchor interval"),
    (("bad", 0, 1, 1, 0), "members"),
    (("bad", 10**23, 1, 1, 0), "members"),
    (("bad", 10, float("inf"), 1, 0), "transfers per member"),
    (("bad", 10, 1e300, 1, 0), "transfers per member"),
    (("bad", 10, 1, 1, 1e308), "growth"),
    (("bad", 10, 1, 1, -0.1), "growth"),
])
def test_workload_bounds(args, message):
    with pytest.raises(ValueError, match=message):
        model.Workload(*args)


def test_presets():
    cc = model.PRESETS["community-currency"]
    assert cc.members == 3_000 and cc.transfers_per_month * 12 == pytest.approx(145_000)
    assert model.PRESETS["care-coop"].members == 250
    assert model.PRESETS["federation"].members == 100_000


# --------------------------------------------------------------------------- measured gas is real

@pytest.fixture(scope="module")
def chain_and_measured():
    w3 = Web3(EthereumTesterProvider())
    mc, erc20 = measure_mutual_credit(w3), measure_erc20(w3)
    return w3, {**mc, **erc20, "tx_bytes": {**mc["tx_bytes"], **erc20["tx_bytes"]}}


@pytest.fixture(scope="module")
def measured(chain_and_measured):
    return chain_and_measured[1]


# A payee address is 20 random bytes in the calldata; each zero byte costs 4 gas instead of 16.
ADDRESS_CALLDATA_SLACK = 12 * 20


def test_every_measured_figure_is_a_receipt_on_the_chain_it_was_measured_on(chain_and_measured):
    w3, measured = chain_and_measured
    used = set()
    for n in range(w3.eth.block_number + 1):
        for tx in w3.eth.get_block(n)["transactions"]:
            receipt = w3.eth.get_transaction_receipt(tx)
            assert receipt.status == 1
            used.add(receipt.gasUsed)
    assert {v for v in measured.values() if isinstance(v, int)} <= used


def _deploy(w3, name, *args):
    art = artifact(name)
    tx = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor(*args).transact({"from": w3.eth.accounts[0]})
    r = w3.eth.wait_for_transaction_receipt(tx)
    return w3.eth.contract(address=r.contractAddress, abi=art["abi"])


def _gas_used(w3, fn, sender):
    r = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))
    assert r.status == 1
    return r.gasUsed


def test_measured_gas_equals_receipts_of_independent_transactions(measured):
    """The same calls made here on another chain, by other accounts, use the measured gas (up to
    the calldata cost of zero bytes in the random payee addresses)."""
    w3 = Web3(EthereumTesterProvider())
    a, b, c = w3.eth.accounts[3:6]
    mc = _deploy(w3, "MutualCredit", w3.eth.accounts[0], secrets.token_bytes(32))
    f = mc.functions
    _gas_used(w3, f.addCurrency(b"HOUR".ljust(12, b"\0"), 600, 2400), w3.eth.accounts[0])
    _gas_used(w3, f.addCurrency(CRED, 10_000, NO_CEILING), w3.eth.accounts[0])
    near = lambda got, key: abs(got - measured[key]) <= ADDRESS_CALLDATA_SLACK  # noqa: E731
    assert near(_gas_used(w3, f.openAccount(a), w3.eth.accounts[0]), "mc_open_account")
    _gas_used(w3, f.openAccount(b), w3.eth.accounts[0])
    assert near(_gas_used(w3, f.transfer(b, CRED, 1234), a), "mc_transfer_first")
    assert near(_gas_used(w3, f.transfer(b, CRED, 1234), a), "mc_transfer_repeat")
    token = _deploy(w3, "CommunityToken", "Community Credit", "CRED", a, 10**12)
    assert near(_gas_used(w3, token.functions.transfer(c, 5_000), a), "erc20_transfer_new_holder")
    assert near(_gas_used(w3, token.functions.transfer(c, 5_000), a), "erc20_transfer_existing")
    assert w3.eth.estimate_gas({"from": a, "to": mc.address, "data": f.transfer(b, CRED, 1234)._encode_transaction_data()}) \
        >= measured["mc_transfer_repeat"]


def test_measured_gas_follows_the_protocol(measured):
    # a new storage slot (new ERC-20 holder, new nonce word) costs exactly the SSTORE difference more
    assert measured["erc20_transfer_new_holder"] - measured["erc20_transfer_existing"] == SSTORE_NEW_SLOT_EXTRA
    # (up to zero bytes of the two random signatures in the calldata: 12 gas each)
    sig_diff = measured["mc_transfer_sig_new_word"] - measured["mc_transfer_sig_same_word"] - SSTORE_NEW_SLOT_EXTRA
    assert abs(sig_diff) <= 48 and sig_diff % 12 == 0
    # MutualCredit writes the slot at opening: the first transfer to an account costs no more
    assert measured["mc_transfer_first"] == measured["mc_transfer_repeat"]
    assert measured["eth_funding"] == 21_000
    # opening writes two new slots (two currencies): at least 2 x 22,100 on top of the 21,000 base
    assert measured["mc_open_account"] > 21_000 + 2 * 22_100
    assert 21_000 < measured["mc_transfer_repeat"] < 40_000
    # the relayed path pays for the signature check (ecrecover 3,000 + hashing) and the nonce
    assert measured["mc_transfer_sig_same_word"] > measured["mc_transfer_repeat"] + 5_000


def test_transaction_sizes_are_measured(measured):
    sizes = {**measured["tx_bytes"]}
    # ABI: selector + one 32-byte word per static argument
    assert sizes["mc_transfer"]["calldata"] == 4 + 3 * 32
    assert sizes["erc20_transfer"]["calldata"] == 4 + 2 * 32
    assert sizes["mc_open_account"]["calldata"] == 4 + 32
    assert sizes["eth_funding"]["calldata"] == 0
    # transferWithSig: 9 head words, the currency string and the 65-byte signature as tails
    assert sizes["mc_transfer_sig"]["calldata"] == 4 + 9 * 32 + (32 + 32) + (32 + 96)
    for kind, b in sizes.items():
        # a signed EIP-1559 transaction: calldata + to, fees, nonce, ... + a 65-byte signature
        assert b["calldata"] + 65 + 20 < b["signed"] < b["calldata"] + 160, kind


def test_relayed_signature_is_bound_to_the_contract(chain_and_measured):
    """measure.py signs for real with verifyingContract; Ayni's off-chain signature of the same
    Transfer (its domain has no contract) is refused on chain, and so is one for another contract."""
    w3 = Web3(EthereumTesterProvider())
    admin, relayer = w3.eth.accounts[0], w3.eth.accounts[1]
    community = secrets.token_bytes(32)
    mc, other = (_deploy(w3, "MutualCredit", admin, community) for _ in range(2))
    key = signing.new_key()
    payer, payee = address_of_key(key), address_of_key(signing.new_key())
    for c in (mc, other):
        _gas_used(w3, c.functions.addCurrency(CRED, 10_000, NO_CEILING), admin)
        for a in (payer, payee):
            _gas_used(w3, c.functions.openAccount(a), admin)
    domain = Domain(chain_id=int(w3.eth.chain_id), salt=community)
    t = Transfer.create(payer=payer, payee=payee, currency="CRED", amount=5, nonce=signing.new_nonce(),
                        valid_until=int(w3.eth.get_block("latest")["timestamp"]) + 600)
    args = (t.payer, t.payee, t.currency, t.amount, t.nonce, t.valid_until, t.memo_hash, t.request_id)
    off_chain = bytes.fromhex(sign_action(key, domain, t)[2:])
    for sig in (off_chain, relay_signature(key, domain, other.address, t)):
        with pytest.raises(Exception, match="revert"):
            mc.functions.transferWithSig(*args, sig).transact({"from": relayer})
    _gas_used(w3, mc.functions.transferWithSig(*args, relay_signature(key, domain, mc.address, t)), relayer)
    assert mc.functions.balanceOf(payer, CRED).call() == -5
    assert other.functions.balanceOf(payer, CRED).call() == 0


# --------------------------------------------------------------------------- off-chain, real postings

def test_sqlite_measurement_posts_and_anchors_for_real():
    off, gas = measure_sqlite(40, accounts=6)
    assert off.backend == "sqlite" and off.transfers == 40 and off.skipped is None
    assert 0 < off.cpu_s_per_transfer < 0.5
    assert 200 < off.db_bytes_per_transfer < 50_000
    assert len(gas["anchor_calls"]) >= 2
    assert max(gas["anchor_calls"]) - min(gas["anchor_calls"]) <= 100  # constant per batch
    assert 21_000 < gas["anchor"] <= 31_500


@pytest.mark.postgres
def test_postgres_measurement(pg_server_url):
    off = measure_postgres(pg_server_url, 30, accounts=5)
    assert off.skipped is None, off.skipped
    assert off.cpu_s_per_transfer > 0 and off.db_bytes_per_transfer > 0


def test_postgres_unreachable_is_a_clear_skip():
    off = measure_postgres("postgresql+psycopg://nobody@127.0.0.1:1/none", 30)
    assert off.skipped.startswith("PostgreSQL unreachable")
    assert measure_postgres("sqlite:///x.db", 30).skipped.startswith("not a PostgreSQL URL")


# --------------------------------------------------------------------------- CLI and demo

def test_cli_report_json_csv_chart(tmp_path):
    out_csv, out_png = tmp_path / "r.csv", tmp_path / "r.png"
    r = ayni("cost-report", "--preset", "community-currency", "--sample", "30", "--json",
             "--csv", str(out_csv), "--chart", str(out_png), "--eth-usd", "2500")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["workload"]["members"] == 3_000
    g = data["measured"]["gas"]
    assert all(isinstance(g[k], int) and g[k] > 21_000 for k in g if k not in ("anchor_calls", "eth_funding", "tx_bytes"))
    assert set(g["tx_bytes"]) == set(TX_KINDS)
    scenarios = [s["name"] for s in data["prices"]["scenarios"]]
    assert len(data["costs"]) == len(scenarios) * len(model.MODES)
    # recompute one cell from the reported figures
    l1 = next(s for s in data["prices"]["scenarios"] if s["name"] == "l1-2025")
    assert l1["native_usd"]["value"] == 2500
    cell = next(c for c in data["costs"] if (c["scenario"], c["mode"]) == ("l1-2025", "mc-direct"))
    w = data["workload"]
    per_gas = l1["gas_price_gwei"]["value"] * 1e-9 * 2500
    assert cell["monthly_usd"] == pytest.approx(w["transfers_per_month"] * g["mc_transfer_repeat"] * per_gas
                                                + w["new_members_per_month"] * (g["mc_open_account"] + g["eth_funding"]) * per_gas
                                                + w["members"] * g["eth_funding"] * per_gas)
    assert cell["excluded"] and cell["one_time_usd"] > 0
    # the rollup's data fee follows each transaction's measured size and the ETH override
    l2 = next(s for s in data["prices"]["scenarios"] if s["name"] == "l2-op-stack")
    relayed = next(c for c in data["costs"] if (c["scenario"], c["mode"]) == ("l2-op-stack", "mc-relayed"))
    per_byte = l2["l1_data_fee_eth_per_byte"]["value"] * 2500
    assert relayed["transfers_usd"] == pytest.approx(w["transfers_per_month"] * (
        g["mc_transfer_sig_new_word"] * l2["gas_price_gwei"]["value"] * 1e-9 * 2500
        + g["tx_bytes"]["mc_transfer_sig"]["signed"] * per_byte))
    assert data["derived"]["relayed_nonces"] == "random"
    assert data["derived"]["relayed_transfer_gas"] == g["mc_transfer_sig_new_word"]
    assert any("front end" in a for a in data["assumptions"])
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(rows) == len(data["costs"]) and {r["mode"] for r in rows} == set(model.MODES)
    assert {r["mode"] for r in rows if r["excluded"]} == {"mc-direct", "mc-relayed", "erc20"}
    assert all(float(r["one_time_usd"]) >= 0 for r in rows) and rows[0]["relayed_nonces"] == "random"
    assert math.isclose(float(rows[0]["monthly_usd"]), data["costs"][0]["monthly_usd"], rel_tol=1e-5)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out_png.stat().st_size > 20_000
    assert data["measured"]["offchain"][1]["skipped"].startswith("not measured")


def test_cli_table_output():
    r = ayni("cost-report", "--preset", "care-coop", "--sample", "20", "--scenario", "gnosis")
    assert r.returncode == 0, r.stderr
    for text in ("Monthly cost (USD)", "mc-relayed", "gnosis", "stops being enough", "docs/costs.md",
                 "one-time migration", "EXCLUDED: front end", "random nonces"):
        assert text in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--preset", "village"], "unknown preset 'village'"),
    (["--members", "0"], "members must be a whole number from 1 to"),
    (["--scenario", "mars"], "unknown price scenario(s) mars"),
    (["--chart", "x.svg"], "--chart must name a .png file"),
    (["--members", "99999999999999999999999"], "members must be a whole number from 1 to"),
    (["--transfers-per-member", "1e300"], "transfers per member must be a number from 0"),
    (["--growth", "1e308"], "growth must be a fraction from 0 to 1"),
    (["--anchor-every", "1e-300"], "the anchor interval must be from one minute"),
    (["--relayed-nonces", "counter"], "--relayed-nonces must be one of random, sequential"),
    (["--prices", "{nonutf8}"], "is not UTF-8 text"),
    (["--prices", "{deep}"], "nested too deeply"),
])
def test_cli_bad_input_is_one_line_and_non_zero(args, message, tmp_path):
    (tmp_path / "nonutf8.json").write_bytes(b"\xff{}")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    args = [a.format(nonutf8=tmp_path / "nonutf8.json", deep=tmp_path / "deep.json") for a in args]
    r = ayni("cost-report", "--sample", "10", *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_malformed_price_file(tmp_path):
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps(_mutate(lambda d: d["eth_usd"].update(as_of="soon"))))
    r = ayni("cost-report", "--prices", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert ".eth_usd.as_of must be a date YYYY-MM-DD" in r.stderr


def test_demo_cost_summary_is_short_and_measured(measured):
    lines = demo_cost_summary(15, 300, anchor_gas=[29_738, 29_750])
    assert 3 <= len(lines) <= 6
    assert "anchor 29,744" in lines[0] and f"transfer {measured['mc_transfer_repeat']:,}" in lines[0]
    assert any(line.startswith("Ethereum L1") for line in lines)


# --------------------------------------------------------------------------- cheapest hosting lines

def test_small_vm_lines_follow_the_prices_file():
    """One small VM priced in EUR: small-sqlite and small-postgres cost exactly its price (converted
    at the file's eur_usd), with nothing for transfers, members or migration, and say what they
    give up against the managed line."""
    data = _mutate(lambda d: None)
    data["hosting"]["small_vm"]["eur_per_month"]["value"] = 5
    data["eur_usd"]["value"] = 1.2
    data["eur_per_usd"]["value"] = 1 / 1.2  # the same rate, as `ayni anchor --estimate` reads it
    prices = parse(data)
    assert prices.hosting.small_vm_usd == pytest.approx(6)
    w = model.PRESETS["care-coop"]
    hosted, rows = model.costs(w, prices, _gas(), cpu_s_per_transfer=0.001, db_bytes_per_transfer=1024)
    assert hosted.small_vms == 1
    for s in prices.scenarios:
        c = {r.mode: r for r in rows if r.scenario == s.name}
        for mode in ("small-sqlite", "small-postgres"):
            assert c[mode].monthly_usd == pytest.approx(6) and c[mode].hosting_usd == pytest.approx(6)
            assert (c[mode].transfers_usd, c[mode].onboarding_usd, c[mode].one_time_usd) == (0, 0, 0)
            assert "backups" in c[mode].gives_up and "failover" in c[mode].gives_up
        # the cheapest honest line is far below the managed one, which keeps its backups and failover
        assert c["small-sqlite"].monthly_usd < c["hosting"].monthly_usd
        assert not c["hosting"].gives_up
    # the command-line override reprices both lines
    cheaper = with_overrides(prices, small_vm_eur=4)
    _, rows = model.costs(w, cheaper, _gas(), cpu_s_per_transfer=0.001, db_bytes_per_transfer=1024)
    assert [r.monthly_usd for r in rows if r.mode in model.SMALL_MODES] == [pytest.approx(4.8)] * 2 * len(prices.scenarios)


def test_sqlite_on_one_vm_is_flagged_when_the_cpu_needs_more():
    """SQLite has one writer on one machine: when the measured CPU needs two small VMs, the
    SQLite line says it does not fit (never silently prices a second VM it cannot use), while
    self-hosted PostgreSQL is charged for the VMs it needs."""
    prices = load()
    w = model.PRESETS["federation"]  # 1,000,000 transfers a month
    # 5 s of CPU a transfer (absurd, to need more than one VM): 2 vCPU x 2,628,000 s x 50% / 5 = 525,600 a month
    hosted, rows = model.costs(w, prices, _gas(), cpu_s_per_transfer=5.0, db_bytes_per_transfer=1024)
    assert hosted.small_vms == math.ceil(w.transfers_per_month / hosted.transfers_per_small_vm_month) >= 2
    c = {r.mode: r for r in rows if r.scenario == prices.scenarios[0].name}
    assert c["small-sqlite"].gives_up.startswith("DOES NOT FIT")
    assert c["small-sqlite"].monthly_usd == pytest.approx(prices.hosting.small_vm_usd)
    assert c["small-postgres"].monthly_usd == pytest.approx(hosted.small_vms * prices.hosting.small_vm_usd)


def test_on_chain_modes_state_the_hosting_they_still_need():
    prices = load()
    _, rows = model.costs(model.PRESETS["care-coop"], prices, _gas(), 0.001, 1024)
    for r in rows:
        if r.mode in ("mc-direct", "mc-relayed", "erc20"):
            assert "web front end" in r.needs and f"${prices.hosting.small_vm_usd:,.2f}" in r.needs
        else:
            assert r.needs == ""
    # and the report carries it, in JSON and CSV
    data = report.build(model.PRESETS["care-coop"], prices,
                        Measurements(_gas(), [OffChain("sqlite", 100, 0.0003, 0.0004, 1_300)], 1.0))
    rows_csv = list(csv.DictReader(io.StringIO(report.to_csv(data))))
    assert {r["mode"] for r in rows_csv} >= set(model.SMALL_MODES)
    assert all("web front end" in r["needs"] for r in rows_csv if r["mode"] == "erc20")
    assert data["prices"]["hosting"]["small_vm"]["usd_per_month"] == pytest.approx(prices.hosting.small_vm_usd)
    assert data["derived"]["small_vms"] == 1


def test_small_vm_lines_do_not_fit_when_a_year_of_data_and_a_backup_outgrow_the_disk():
    """2,000 members making 20,000 transfers each a month grow the database by hundreds of GiB a
    year: a 40 GB small VM cannot hold it, whatever its CPU says. The care cooperative fits."""
    prices = load()
    big = model.Workload("big", members=2000, transfers_per_member=20000, anchor_every_hours=1, growth=0)
    hosted, rows = model.costs(big, prices, _gas(), cpu_s_per_transfer=0.0005, db_bytes_per_transfer=1300)
    assert hosted.small_disk_gib_needed == pytest.approx(2 * hosted.storage_gib_per_year)
    assert hosted.small_disk_gib_needed > hosted.small_disk_gib_usable == prices.hosting.small_vm.disk_gib / 2
    c = {r.mode: r for r in rows if r.scenario == prices.scenarios[0].name}
    for mode in model.SMALL_MODES:
        assert "DOES NOT FIT" in c[mode].gives_up and "local backup" in c[mode].gives_up, c[mode].gives_up
    hosted, rows = model.costs(model.PRESETS["care-coop"], prices, _gas(), 0.0005, 1300)
    assert all("DOES NOT FIT" not in r.gives_up for r in rows if r.mode in model.SMALL_MODES)


def test_small_vm_cpu_uses_the_http_figure_and_one_worker_for_sqlite():
    """The in-process ledger CPU (0.5 ms) leaves out HTTP and the signature check the server
    pays per transfer (benchmarks/footprint.py); SQLite runs one worker, so one vCPU."""
    prices = load()
    hosted, _ = model.costs(model.PRESETS["care-coop"], prices, _gas(), cpu_s_per_transfer=0.0005,
                            db_bytes_per_transfer=1300)
    util = prices.hosting.cpu_utilisation.value
    assert hosted.transfers_per_small_sqlite_month == pytest.approx(
        model.SECONDS_PER_MONTH * util / model.HTTP_CPU_S_PER_TRANSFER["small-sqlite"])
    assert hosted.transfers_per_small_vm_month == pytest.approx(
        prices.hosting.small_vm.vcpus * model.SECONDS_PER_MONTH * util / model.HTTP_CPU_S_PER_TRANSFER["small-postgres"])
    # a load one SQLite worker cannot carry, though two vCPUs at the ledger-only figure could
    t = hosted.transfers_per_small_sqlite_month * 1.5
    w = model.Workload("busy", members=10_000, transfers_per_member=t / 10_000, anchor_every_hours=1, growth=0)
    _, rows = model.costs(w, prices, _gas(), cpu_s_per_transfer=0.0005, db_bytes_per_transfer=0.01)
    c = {r.mode: r for r in rows if r.scenario == prices.scenarios[0].name}
    assert c["small-sqlite"].gives_up.startswith("DOES NOT FIT") and "SQLite worker" in c["small-sqlite"].gives_up
    assert "DOES NOT FIT" not in c["small-postgres"].gives_up


def test_the_eur_rate_has_one_meaning_in_both_spellings():
    """eur_usd (USD per EUR, the small-VM lines) and eur_per_usd (EUR per USD, what
    `ayni anchor --estimate` reads) are one rate: the shipped file carries both, reciprocal, and
    a file with one inverted by analogy is refused instead of converting the wrong way."""
    prices = load()
    raw = json.loads(Path(prices.path).read_text(encoding="utf-8"))
    assert raw["eur_per_usd"]["value"] * raw["eur_usd"]["value"] == pytest.approx(1, rel=0.01)
    inverted = _mutate(lambda d: d["eur_per_usd"].__setitem__("value", d["eur_usd"]["value"]))
    with pytest.raises(PricesError, match="inverted"):
        parse(inverted)
