"""Cost comparison: Ayni off-chain + anchoring vs every transfer on chain (MutualCredit.sol) vs an
ERC-20 vs hosting alone, from gas and CPU measured in the same run. `ayni cost-report` is the
face (ledger/cli/costs.py); method and results are in docs/costs.md.

    prices.py   dated, sourced price scenarios (prices.json), validated
    measure.py  real transactions on the embedded EVM; real signed postings on SQLite / PostgreSQL
    model.py    pure arithmetic: monthly cost per mode and scenario
    report.py   JSON, CSV, rich tables;  chart.py  PNG (matplotlib, Agg)
"""
from __future__ import annotations

DEMO_SCENARIOS = ("l1-2025", "l2-op-stack", "gnosis")


def _anchor_gas(chain) -> tuple[int, dict]:
    """One real anchor call on a fresh Anchor contract (steady-state cost: the head slot is
    non-zero from deployment on), and its transaction's size."""
    from .. import signing
    from ..core.hashing import keccak256
    from .measure import anchor_tx_sizes
    other = chain.with_key(signing.new_key())  # own key and contract: the caller's adapter is untouched
    other.deploy()
    status = other.wait(other.send_anchor(keccak256(b"ayni demo cost"), 1, 100))
    return int(status.gas_used), anchor_tx_sizes(chain.w3, other.contract_address)


def demo_cost_summary(members: int, transfers_per_month: int, *, chain=None, anchor_gas=None,
                      anchor_every_hours: float = 24, growth: float = 0.01, prices=None,
                      scenarios: tuple[str, ...] = DEMO_SCENARIOS) -> list[str]:
    """A few lines for the end of `ayni demo`: monthly cost of the demo cooperative in each mode.
    `chain` is an embedded AnchorChain to measure on (a new one if None); `anchor_gas` the gas
    of anchors already sent (a list or one number), measured here if None. ~1-2 s."""

    from . import model
    from .measure import MeasureError, anchor_tx_sizes, gas_figures, measure_erc20, measure_mutual_credit
    from .prices import load
    from .report import usd

    if chain is None:
        from ..chain import AnchorChain
        chain = AnchorChain.embedded()
    if getattr(chain, "_tester", None) is None:
        raise ValueError("demo_cost_summary measures on the embedded chain only")
    if anchor_gas is None:
        anchor, size = _anchor_gas(chain)
    else:
        anchor = anchor_gas if isinstance(anchor_gas, int) else round(sum(anchor_gas) / len(anchor_gas))
        try:  # the size of the anchors already sent on this chain, else of one sent now
            size = anchor_tx_sizes(chain.w3, chain.contract_address or "")
        except MeasureError:
            size = _anchor_gas(chain)[1]
    gas = gas_figures({"anchor": anchor, "anchor_calls": [anchor], "anchor_deploy": 0, "tx_bytes": {"anchor": size}},
                      measure_mutual_credit(chain.w3), measure_erc20(chain.w3))
    prices = prices or load()
    w = model.Workload("demo", max(1, members), transfers_per_month / max(1, members), anchor_every_hours, growth)
    hosted = model.Hosted(vms=1, transfers_per_vm_month=float("inf"), storage_gib_per_year=0.0)  # a demo's volume
    lines = [f"{w.members} members, {transfers_per_month:,} transfers/month, anchoring every {anchor_every_hours:g} h; "
             f"gas measured just now: anchor {gas.anchor:,}, on-chain mutual-credit transfer "
             f"{gas.mc_transfer_repeat:,} (relayed, random nonce {round(model.relayed_gas(gas)):,}), ERC-20 transfer "
             f"{gas.erc20_transfer_existing:,}"]
    for name in scenarios:
        try:
            s = prices.scenario(name)
        except ValueError:
            continue
        c = {m: model.mode_cost(m, w, s, gas, hosted, prices) for m in model.MODES}
        lines.append(f"{s.label}: anchoring {usd(c['anchored'].transfers_usd)} (+ hosting "
                     f"{usd(c['hosting'].monthly_usd)}) | every transfer on chain {usd(c['mc-direct'].monthly_usd)} "
                     f"(relayed {usd(c['mc-relayed'].monthly_usd)} incl. a relayer VM) | ERC-20 {usd(c['erc20'].monthly_usd)} per month")
    lines.append(f"prices as of {prices.eth_usd.as_of} (ETH ${prices.eth_usd.value:,.0f}); "
                 "full report with sources: ayni cost-report --preset care-coop")
    return lines
