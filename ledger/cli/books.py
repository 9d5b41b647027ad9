"""`ayni init`, `verify`, `balances`, `export-log`: the community's books themselves."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ..community import DEFAULT_CHAIN_ID, new_genesis
from ..core import errors as E
from ..core.addresses import normalize_address
from ..core.codec import hex0x
from .options import fail_error, AsJson, Db, fail, open_ledger, persistent_url, say
from .anchoring import CONTRACT_HELP


def init(treasurer: str = typer.Option(..., help="Address of the first treasurer (their key stays with them)"),
         community: str = typer.Option("My cooperative", help="Community name"),
         chain_id: int = typer.Option(DEFAULT_CHAIN_ID, help="Chain id of the EIP-712 domain"),
         db: Db = None) -> None:
    """Create the database schema and the community's genesis entry."""
    try:
        address = normalize_address(treasurer, what="treasurer")
        ledger = open_ledger(persistent_url(db), migrate=True)
        entry = ledger.initialise(new_genesis(community, address, chain_id=chain_id))
    except E.LedgerError as exc:
        fail_error(exc)
    d = ledger.genesis.domain
    say(f"initialised {community!r} at {db}\n"
               f"genesis entry hash {hex0x(entry.entry_hash)}\n"
               f"EIP-712 domain: {json.dumps(d.as_eip712())}")


def verify(db: Db = None, as_json: AsJson = False,
           jobs: int = typer.Option(None, "--jobs", "-j", min=1,
                                    help="Cores recovering signatures (1: in this process; default: every core). "
                                         "Logs under 20,000 entries are checked in this process anyway")) -> None:
    """Re-hash the log, replay it with every signature and rule, compare balances, check zero-sum.

    Signatures are recovered on every core, ahead of the replay (docs/reconcile.md, "Parallel
    recovery and memory"): the same findings as one core, in about half the time."""
    from ..audit import audit
    try:
        ledger = open_ledger(db)
        # which server was checked: with a multi-host URL it matters (docs/high-availability.md)
        server = ledger.server_info()
        report = audit(ledger, jobs=jobs)
    except E.LedgerError as exc:
        fail_error(exc)
    out = {"ok": report.ok, "entries": report.entries, **({"server": server} if server else {}),
           **{k: [f.as_json() for f in getattr(report, k)] for k in ("chain_faults", "replay_faults", "balance_faults")},
           "zero_sum_faults": report.zero_sum_faults}
    if as_json:
        typer.echo(json.dumps(out, default=str, indent=2))
    else:
        say(f"{report.entries} entries; chain faults {len(report.chain_faults)}, replay faults "
                   f"{len(report.replay_faults)}, balance faults {len(report.balance_faults)}, "
                   f"zero-sum faults {report.zero_sum_faults or 'none'}")
        if server:
            say(f"checked on {server['address']} (system {server['systemIdentifier']}, "
                f"timeline {server['timeline']})")
        for fault in report.chain_faults + report.replay_faults + report.balance_faults:
            say(f"  {fault}")
    if not report.ok:
        raise typer.Exit(1)


def balances(db: Db = None, as_json: AsJson = False) -> None:
    """Every account's balance and limits per currency."""
    try:
        ledger = open_ledger(db)
        currencies, positions = ledger.currencies, ledger.positions()
    except E.LedgerError as exc:
        fail_error(exc)
    rows = [{"account": a, "currency": c, "balance": p.balance, "creditLimit": p.credit_limit,
             "ceiling": p.ceiling, "formatted": currencies[c].format(p.balance)}
            for (a, c), p in sorted(positions.items())]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            say(f"{r['account']}  {r['currency']:5} {r['formatted']:>12}")


def export_log(out: Path = typer.Option(..., "--out", help="File to write (JSON Lines; replaced atomically)"),
               db: Db = None,
               contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP)) -> None:
    """Export the log with the balance sheet and anchor records, for `ayni-wallet reconcile --log`.

    An auditor holding the file needs no access to the server."""
    from ..log_export import export_log as write_export
    try:
        summary = write_export(open_ledger(db), out, anchor_contract=contract)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    say(f"exported {summary['entries']} entries (head seq {summary['headSeq']}) to {out}")
