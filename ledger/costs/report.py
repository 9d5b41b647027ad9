"""The cost report as data (JSON), CSV rows and rich tables."""
from __future__ import annotations

import csv
import io

from rich.console import Console
from rich.table import Table

from . import model
from .measure import Measurements
from .prices import Prices


def build(w: model.Workload, prices: Prices, m: Measurements, *, nonces: str = "random") -> dict:
    """Everything the report says, as JSON-ready data."""
    off = m.production()
    hosted, rows = model.costs(w, prices, m.gas, off.cpu_s_per_transfer, off.db_bytes_per_transfer, nonces=nonces)
    t = w.transfers_per_month
    return {
        "workload": w.to_json(),
        "measured": m.to_json(),
        "derived": {"relayed_nonces": nonces, "relayed_transfer_gas": model.relayed_gas(m.gas, nonces),
                    "hosting_figures_from": off.backend, "vms": hosted.vms,
                    "transfers_per_vm_month": hosted.transfers_per_vm_month,
                    "db_gib_per_year": hosted.storage_gib_per_year,
                    "db_storage_included_gib": prices.hosting.pg_storage_gib,
                    "db_extra_storage_usd_per_month": hosted.storage_usd_per_month,
                    "small_vm_usd_per_month": prices.hosting.small_vm_usd, "small_vms": hosted.small_vms,
                    "transfers_per_small_vm_month": hosted.transfers_per_small_vm_month,
                    "transfers_per_small_sqlite_month": hosted.transfers_per_small_sqlite_month,
                    "small_disk_gib_needed": hosted.small_disk_gib_needed,
                    "small_disk_gib_usable": hosted.small_disk_gib_usable},
        "assumptions": ASSUMPTIONS,
        "prices": prices.to_json(),
        "modes": model.mode_labels(nonces),
        "costs": [c.to_json(t) for c in rows],
    }


ASSUMPTIONS = [
    "on-chain modes: no front end and no RPC provider or indexer priced (a real deployment needs both); "
    "mc-relayed is charged one VM for its relayer",
    "mc-direct and erc20: every member receives one ETH top-up (a 21,000-gas transfer) a month so she can "
    "keep paying gas; the ETH itself pays her transfers, already counted",
    "one_time_usd: migrating an existing cooperative - deploying the contract(s) and opening every current "
    "member (MutualCredit openAccount, + ETH funding when members pay gas; ERC-20 first distribution + funding)",
    "database storage: grows from empty at the measured bytes per transfer; storage beyond the plan's "
    "included disk is charged per GiB-month, averaged over the first year",
    "anchoring: Ayni's anchorer sends ceil(entries waiting / max batch) transactions per interval, "
    "entries spread evenly over the month",
    "rollups: the L1 data fee is charged per byte of each signed transaction (uncompressed: an upper bound)",
    "small-sqlite / small-postgres: one small VM priced in EUR (converted at eur_usd), Ayni and its database on "
    "it; its CPU capacity from the same measured ledger CPU; no managed backups or failover (see gives_up)",
]


CSV_FIELDS = ["workload", "members", "transfers_per_month", "anchor_every_hours", "growth", "relayed_nonces",
              "scenario", "mode", "monthly_usd", "transfers_usd", "onboarding_usd", "topups_usd", "hosting_usd",
              "usd_per_transfer", "one_time_usd", "excluded", "gives_up", "needs"]


def to_csv(data: dict) -> str:
    out = io.StringIO()
    wr = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    wr.writeheader()
    w = data["workload"]
    for c in data["costs"]:
        wr.writerow({"workload": w["name"], "members": w["members"], "transfers_per_month": round(w["transfers_per_month"], 2),
                     "anchor_every_hours": w["anchor_every_hours"], "growth": w["growth"],
                     "relayed_nonces": data["derived"]["relayed_nonces"],
                     **{k: (round(c[k], 6) if isinstance(c[k], float) else c[k]) for k in CSV_FIELDS[6:]}})
    return out.getvalue()


def usd(x: float) -> str:
    if x >= 100:
        return f"${x:,.0f}"
    if x >= 1:
        return f"${x:,.2f}"
    if x >= 0.01:
        return f"${x:.3f}"
    return f"${x:.2g}" if x else "$0"


def summary_lines(data: dict) -> list[str]:
    """Plain lines: when one VM stops being enough, and how fast the database grows."""
    d = data["derived"]
    per_s = d["transfers_per_vm_month"] / model.SECONDS_PER_MONTH
    return [f"one VM ({data['prices']['hosting']['vm']['label']}) stops being enough at "
            f"~{d['transfers_per_vm_month']:,.0f} transfers/month (~{per_s:,.0f}/s sustained at "
            f"{data['prices']['hosting']['cpu_utilisation']['value']:.0%} CPU, measured ledger CPU only; HTTP, TLS "
            f"and sign-in cost more: `make bench`); this workload needs {d['vms']} VM(s)",
            f"database growth: {d['db_gib_per_year']:.2f} GiB/year at the measured {d['hosting_figures_from']} bytes "
            f"per transfer ({d['db_storage_included_gib']:g} GiB come with the managed PostgreSQL price"
            + (f", enough for ~{d['db_storage_included_gib'] / d['db_gib_per_year']:.1f} years" if d["db_gib_per_year"] else "")
            + f"); storage beyond it adds {usd(d['db_extra_storage_usd_per_month'])}/month (first-year average)",
            f"relayed transfers priced with {d['relayed_nonces']} nonces: {d['relayed_transfer_gas']:,.0f} gas each",
            f"one small VM ({data['prices']['hosting']['small_vm']['label']}, "
            f"{usd(d['small_vm_usd_per_month'])}/month) carries ~{d['transfers_per_small_vm_month']:,.0f} "
            f"transfers/month with PostgreSQL and ~{d['transfers_per_small_sqlite_month']:,.0f} with SQLite "
            f"(one worker) at the measured HTTP CPU per transfer; this workload needs {d['small_vms']}; a year of "
            f"data plus a local backup takes {d['small_disk_gib_needed']:,.1f} of the "
            f"{d['small_disk_gib_usable']:,.0f} GiB it may use"]


def render(data: dict, console: Console) -> None:
    w, g = data["workload"], data["measured"]["gas"]
    console.rule(f"[bold]Cost report: {w['name']}")
    if w.get("description"):
        console.print(w["description"])
    console.print(f"{w['members']:,} members, {w['transfers_per_month']:,.0f} transfers/month, "
                  f"{w['new_members_per_month']:,.1f} new members/month, anchoring every {w['anchor_every_hours']:g} h "
                  f"({w['anchors_per_month']:,.0f} anchor transactions/month)")

    gas = Table(title=f"Gas measured on the embedded EVM ({data['measured']['evm']})")
    gas.add_column("transaction")
    gas.add_column("gas", justify="right")
    gas.add_column("signed bytes", justify="right")
    sizes = g["tx_bytes"]
    size_of = {"anchor": "anchor", "mc_transfer_repeat": "mc_transfer", "mc_transfer_sig_new_word": "mc_transfer_sig",
               "mc_transfer_sig_same_word": "mc_transfer_sig", "mc_open_account": "mc_open_account",
               "erc20": "erc20_transfer", "eth_funding": "eth_funding"}
    for label, key in (("Ayni anchor (per batch of up to " + f"{w['anchor_max_batch']:,} entries)", "anchor"),
                       ("MutualCredit transfer (to a new or an old account)", "mc_transfer_repeat"),
                       ("MutualCredit relayed EIP-712 transfer, new nonce word", "mc_transfer_sig_new_word"),
                       ("MutualCredit relayed EIP-712 transfer, used nonce word", "mc_transfer_sig_same_word"),
                       ("MutualCredit open account (2 currencies)", "mc_open_account"),
                       ("MutualCredit set limit / freeze", None),
                       ("ERC-20 transfer to an existing / a new holder", "erc20"),
                       ("ETH sent to a member for gas", "eth_funding")):
        b = f"{sizes[size_of[key]]['signed']:,}" if size_of.get(key) in sizes else ""
        if key is None:
            gas.add_row(label, f"{g['mc_set_limit']:,} / {g['mc_freeze']:,}", b)
        elif key == "erc20":
            gas.add_row(label, f"{g['erc20_transfer_existing']:,} / {g['erc20_transfer_new_holder']:,}", b)
        else:
            gas.add_row(label, f"{g[key]:,}", b)
    console.print(gas)

    off = Table(title="Off-chain service, measured in this run (signed transfers, one DB transaction each)")
    for col in ("database", "transfers", "CPU ms/transfer", "DB bytes/transfer"):
        off.add_column(col, justify="left" if col == "database" else "right")
    notes = []
    for o in data["measured"]["offchain"]:
        if o["skipped"]:
            off.add_row(o["backend"], "-", "-", "-")
            notes.append(f"[yellow]{o['backend']}: {o['skipped']}[/]")
        else:
            off.add_row(o["backend"], str(o["transfers"]), f"{o['cpu_s_per_transfer'] * 1e3:.3f}",
                        f"{o['db_bytes_per_transfer']:,.0f}")
            notes += [f"[dim]{o['backend']}: {n}[/]" for n in o["notes"]]
    console.print(off)
    for n in notes:
        console.print(n)

    scen = data["prices"]["scenarios"]
    t = Table(title="Monthly cost (USD)")
    t.add_column("mode")
    for sc in scen:
        t.add_column(sc["name"], justify="right")
    by = {(c["mode"], c["scenario"]): c for c in data["costs"]}
    for mode in data["modes"]:
        t.add_row(mode, *[usd(by[(mode, sc["name"])]["monthly_usd"]) for sc in scen])
    t.add_row("[dim]mc-direct per transfer[/]",
              *[f"[dim]{usd(by[('mc-direct', sc['name'])]['usd_per_transfer'] or 0)}[/]" for sc in scen])
    t.add_section()
    for mode in data["modes"]:
        t.add_row(f"one-time migration: {mode}", *[usd(by[(mode, sc["name"])]["one_time_usd"]) for sc in scen])
    console.print(t)
    for mode, label in data["modes"].items():
        row = by[(mode, scen[0]["name"])]
        excluded, gives_up, needs = row["excluded"], row.get("gives_up", ""), row.get("needs", "")
        console.print(f"[dim]{mode}: {label}" + (f"; EXCLUDED: {excluded}" if excluded else "")
                      + (f"; GIVES UP: {gives_up}" if gives_up else "") + (f"; NEEDS: {needs}" if needs else "") + "[/]")
    for a in data["assumptions"]:
        console.print(f"[dim]assumption: {a}[/]")
    for line in summary_lines(data):
        console.print(line)
    console.print("[dim]prices: " + "; ".join(
        f"{s['name']} = {s['label']}: {s['gas_price_gwei']['value']:g} gwei × {s['native']} ${s['native_usd']['value']:,g} "
        f"(as of {s['gas_price_gwei']['as_of']})"
        + (f" + L1 data {s['l1_data_fee_eth_per_byte']['value']:g} ETH/byte" if s["l1_data_fee_eth_per_byte"] else "")
        for s in scen)
        + f"; file {data['prices']['file']}. What each mode gives beyond cost: docs/costs.md[/]")
