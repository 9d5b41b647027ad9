"""`ayni cost-report`: what anchoring, a fully on-chain ledger, an ERC-20 and plain hosting would
cost a cooperative per month, from gas and CPU measured in this very run (ledger/costs).
Bad input exits with status 2 (as a usage error), like the option parser's own refusals."""
from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.console import Console

from .options import fail

PRESET_HELP = "care-coop (250 members), community-currency (~3,000 active, ~145,000 transfers/year), federation (100,000)"


BAD_INPUT = 2  # exit status of a refused option, as the option parser's own refusals


def cost_report(
    preset: str = typer.Option("care-coop", help=PRESET_HELP),
    members: int = typer.Option(None, help="Members (overrides the preset)"),
    transfers_per_member: float = typer.Option(None, help="Transfers per member per month (overrides the preset)"),
    anchor_every: float = typer.Option(None, help="Hours between anchors (overrides the preset)"),
    growth: float = typer.Option(None, help="New members per month as a fraction of members, e.g. 0.02"),
    relayed_nonces: str = typer.Option("random", help="Nonces the relayed mode is priced with: random (what Ayni "
                                                      "signs: a new bitmap word each) or sequential (amortised)"),
    prices_file: Path = typer.Option(None, "--prices", help="Price file (default: the one shipped, ledger/costs/prices.json)"),
    scenario: list[str] = typer.Option(None, help="Only these price scenarios (repeatable)"),
    gas_price_gwei: float = typer.Option(None, help="Replace the Ethereum L1 scenarios by one at this gas price"),
    eth_usd: float = typer.Option(None, help="ETH price in USD for every ETH-paid scenario"),
    vm_usd: float = typer.Option(None, help="Monthly price of one VM in USD"),
    postgres_usd: float = typer.Option(None, help="Monthly price of the managed PostgreSQL in USD"),
    small_vm_eur: float = typer.Option(None, help="Monthly price of the small VM (small-sqlite, small-postgres) in EUR"),
    sample: int = typer.Option(300, help="Signed transfers posted to measure the off-chain cost"),
    postgres_url: str = typer.Option(None, help="PostgreSQL server to measure on too (a throwaway database "
                                                "is created and dropped); skipped if not given"),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON"),
    csv_file: Path = typer.Option(None, "--csv", help="Also write the cost rows as CSV to this file"),
    chart_file: Path = typer.Option(None, "--chart", help="Also write a PNG chart (cost against members)"),
) -> None:
    """Monthly cost of Ayni + anchoring vs every transfer on chain vs an ERC-20 vs hosting, measured."""
    from dataclasses import replace

    from ..costs import model, report
    from ..costs.measure import MeasureError, measure_all
    from ..costs.prices import PricesError, load, with_overrides

    if preset not in model.PRESETS:
        fail(f"unknown preset {preset!r} (known: {', '.join(model.PRESETS)})", BAD_INPUT)
    if sample < 10 or sample > 100_000:
        fail("--sample must be between 10 and 100000", BAD_INPUT)
    if relayed_nonces not in model.NONCES:
        fail(f"--relayed-nonces must be one of {', '.join(model.NONCES)}, got {relayed_nonces!r}", BAD_INPUT)
    if chart_file is not None and chart_file.suffix.lower() != ".png":
        fail(f"--chart must name a .png file, got {chart_file}", BAD_INPUT)
    try:
        base = model.PRESETS[preset]
        changes = {k: v for k, v in (("members", members), ("transfers_per_member", transfers_per_member),
                                     ("anchor_every_hours", anchor_every), ("growth", growth)) if v is not None}
        workload = replace(base, name=base.name if not changes else f"{base.name} (adjusted)", **changes)
    except ValueError as exc:
        fail(str(exc), BAD_INPUT)
    try:
        prices = with_overrides(load(prices_file), eth_usd=eth_usd, gas_price_gwei=gas_price_gwei,
                                vm_usd=vm_usd, postgres_usd=postgres_usd, only=scenario or None,
                                small_vm_eur=small_vm_eur)
    except PricesError as exc:
        fail(str(exc), BAD_INPUT)
    if not prices.scenarios:
        fail("no price scenario left to report", BAD_INPUT)
    console = Console(stderr=as_json)
    with console.status("measuring gas on the embedded EVM and posting signed transfers..."):
        try:
            measured = measure_all(sample=sample, postgres_url=postgres_url)
        except MeasureError as exc:
            fail(f"measurement failed: {exc}", BAD_INPUT)
    data = report.build(workload, prices, measured, nonces=relayed_nonces)
    if not all(math.isfinite(c[k]) for c in data["costs"] for k in ("monthly_usd", "one_time_usd")):
        fail("the prices and workload give costs too large to represent: check the price file and options", BAD_INPUT)
    if csv_file is not None:
        try:
            csv_file.parent.mkdir(parents=True, exist_ok=True)
            csv_file.write_text(report.to_csv(data))
        except OSError as exc:
            fail(f"cannot write {csv_file}: {exc.strerror or exc}", BAD_INPUT)
    if chart_file is not None:
        from ..costs.chart import write_chart
        try:
            write_chart(chart_file, workload, prices, measured, nonces=relayed_nonces)
        except OSError as exc:
            fail(f"cannot write {chart_file}: {exc.strerror or exc}", BAD_INPUT)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    report.render(data, console)
    for path, what in ((csv_file, "CSV"), (chart_file, "chart")):
        if path is not None:
            console.print(f"{what} written to {path}")
