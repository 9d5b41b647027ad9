"""`ayni`: the operator's command line (thin face over ledger.service)."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

import typer
from rich.console import Console

from .community import DEFAULT_CHAIN_ID, new_genesis
from .core import errors as E
from .core.addresses import normalize_address
from .store.db import resolve_url

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Ayni: mutual-credit ledger for platform cooperatives.")
DB_HELP = "Database URL (default: $AYNI_DB_URL or sqlite:///ayni-data/ayni.db)"
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


@app.command()
def init(treasurer: str = typer.Option(..., help="Address of the first treasurer (their key stays with them)"),
         community: str = typer.Option("My cooperative", help="Community name"),
         chain_id: int = typer.Option(DEFAULT_CHAIN_ID, help="Chain id of the EIP-712 domain"),
         db: str = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Create the database schema and the community's genesis entry."""
    from .service import Ledger
    try:
        address = normalize_address(treasurer, what="treasurer")
        ledger = Ledger.open(resolve_url(db))
        entry = ledger.initialise(new_genesis(community, address, chain_id=chain_id))
    except E.LedgerError as exc:
        _fail(str(exc))
    d = ledger.genesis.domain
    typer.echo(f"initialised {community!r} at {resolve_url(db)}\n"
               f"genesis entry hash 0x{entry.entry_hash.hex()}\n"
               f"EIP-712 domain: {json.dumps(d.as_eip712())}")


@app.command()
def demo(db: str = typer.Option("ayni-data/demo.db", help="SQLite file for the demo (recreated)"),
         transfers: int = typer.Option(300, min=1, max=100_000, help="Random transfers to attempt"),
         seed: int = typer.Option(None, help="Random seed for a repeatable run")) -> None:
    """Run a small care cooperative end to end on embedded SQLite."""
    from .demo import run_demo
    result = run_demo(db, transfers=transfers, seed=seed)
    if not result["ok"]:
        _fail("an invariant failed: see above")


@app.command()
def verify(db: str = typer.Option(None, "--db", help=DB_HELP),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output")) -> None:
    """Re-hash the log, replay it with every signature and rule, compare balances, check zero-sum."""
    from .service import Ledger
    try:
        report = Ledger.open(resolve_url(db), migrate=False).verify()
    except E.LedgerError as exc:
        _fail(str(exc))
    out = {"ok": report.ok, **asdict(report)}
    if as_json:
        typer.echo(json.dumps(out, default=str, indent=2))
    else:
        typer.echo(f"{report.entries} entries; chain faults {len(report.chain_faults)}, replay faults "
                   f"{len(report.replay_faults)}, balance faults {len(report.balance_faults)}, "
                   f"zero-sum faults {report.zero_sum_faults or 'none'}")
        for fault in report.chain_faults + report.replay_faults + report.balance_faults:
            typer.echo(f"  {fault}")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def balances(db: str = typer.Option(None, "--db", help=DB_HELP),
             as_json: bool = typer.Option(False, "--json", help="Machine-readable output")) -> None:
    """Every account's balance and limits per currency."""
    from .service import Ledger
    try:
        ledger = Ledger.open(resolve_url(db), migrate=False)
        currencies, positions = ledger.currencies, ledger.positions()
    except E.LedgerError as exc:
        _fail(str(exc))
    rows = [{"account": a, "currency": c, "balance": p.balance, "creditLimit": p.credit_limit,
             "ceiling": p.ceiling, "formatted": currencies[c].format(p.balance)}
            for (a, c), p in sorted(positions.items())]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            typer.echo(f"{r['account']}  {r['currency']:5} {r['formatted']:>12}")


def main() -> None:
    from sqlalchemy.exc import SQLAlchemyError
    try:
        app()
    except E.LedgerError as exc:  # anything a command forgot to catch still exits cleanly
        err.print(f"[red]error:[/] {exc}")
        sys.exit(1)
    except SQLAlchemyError as exc:  # unreachable server, bad URL, locked file...
        err.print(f"[red]database error:[/] {str(exc).splitlines()[0]}")
        sys.exit(2)


if __name__ == "__main__":
    main()
