"""`ayni`: the operator's command line (thin face over ledger.service)."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console

from .community import DEFAULT_CHAIN_ID, new_genesis
from .core import errors as E
from .core.addresses import normalize_address
from .store.db import resolve_url

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Ayni: mutual-credit ledger for platform cooperatives.")
DB_HELP = "Database URL (default: $AYNI_DB_URL or sqlite:///ayni-data/ayni.db)"
CONTRACT_HELP = "Address of the Anchor contract (default: $AYNI_ANCHOR_CONTRACT)"
CHAIN_HELP = "JSON-RPC URL of an Ethereum-compatible node (default: $AYNI_CHAIN_URL)"
KEYSTORE_HELP = "Encrypted V3 keystore of the anchoring key (default: $AYNI_ANCHOR_KEYSTORE)"
PASSWORD_HELP = "File holding the keystore passphrase (else $AYNI_ANCHOR_PASSWORD, else a hidden prompt)"
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
    if not _demo_reconcile(result):
        _fail("the treasurer's reconciliation found discrepancies: see above")


def _demo_reconcile(result: dict) -> bool:
    """The demo's last step: the treasurer exports the log and reconciles it, independently of
    the service's code, against the chain (what `ayni-wallet reconcile` does)."""
    from rich.console import Console
    from wallet_cli.reconcile import reconcile, render
    from .log_export import export_log
    from .service import Ledger
    console = Console()
    console.rule("The treasurer reconciles the ledger and the chain")
    anchoring = result["anchoring"]
    ledger = Ledger.open(f"sqlite:///{result['db']}", migrate=False)
    path = Path(result["db"]).with_suffix(".log.jsonl")
    try:
        export_log(ledger, path, anchor_contract=anchoring["contract"])
    finally:
        ledger.engine.dispose()
    console.print(f"`ayni export-log` wrote {path}; `ayni-wallet reconcile --log {path}` reads it with "
                  "ledger.core and web3 only")
    report = reconcile(export=path, chain=anchoring["chain"])
    render(report, console)
    return report.ok


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


@app.command()
def serve(db: str = typer.Option(None, "--db", help=DB_HELP),
          host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
          port: int = typer.Option(8000, min=1, max=65535),
          workers: int = typer.Option(1, min=1, max=64, help="Worker processes (PostgreSQL for more than one)"),
          public_uri: str = typer.Option(None, help="Public base URL members sign in to (SIWE); default http://HOST:PORT"),
          contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP),
          anchor_every: float = typer.Option(0, min=0, help="Anchor automatically every this many seconds "
                                             "(0: off); needs --chain/--keystore as for `ayni anchor`"),
          anchor_min_entries: int = typer.Option(1, min=1, help="...or only once this many entries wait"),
          chain: str = typer.Option(None, "--chain", envvar="AYNI_CHAIN_URL", help=CHAIN_HELP),
          keystore: Path = typer.Option(None, envvar="AYNI_ANCHOR_KEYSTORE", help=KEYSTORE_HELP),
          password_file: Path = typer.Option(None, help=PASSWORD_HELP),
          retention_every: float = typer.Option(0, min=0, help="Run the declared retention (erase old memos, "
                                                "closed accounts' profiles) every this many seconds (0: off)")
          ) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json) and the member web app at /.

    Optionally anchors (--anchor-every) and applies retention (--retention-every) in the background."""
    import threading
    import uvicorn
    from .service import Ledger
    url = resolve_url(db)
    ledger = Ledger.open(url)  # migrate once, before workers start
    if anchor_every:
        # One anchorer for the whole server, in this (parent) process: workers never race
        # to anchor, and a slow or dead chain never touches a request.
        from .anchoring import Anchoring, watch
        job = Anchoring(ledger, _chain(chain, keystore, password_file, contract))
        threading.Thread(target=watch, daemon=True, name="ayni-anchorer", kwargs=dict(
            job=job, interval=anchor_every, min_entries=anchor_min_entries, stop=threading.Event(),
            on_report=lambda r: err.print(f"anchored through seq {r.anchored_through} ({r.confirmed} batches)"),
            on_error=lambda m: err.print(f"[yellow]anchoring:[/] {m}"))).start()
    if retention_every:
        from .privacy import retention
        threading.Thread(target=retention.watch, daemon=True, name="ayni-retention", kwargs=dict(
            ledger=ledger, every_s=retention_every, stop=threading.Event(),
            on_error=lambda m: err.print(f"[yellow]retention:[/] {m}"))).start()
    if workers > 1 and url.startswith("sqlite"):
        err.print("[yellow]note:[/] several workers on SQLite serialise on one file; PostgreSQL is the production path")
    uri = public_uri or f"http://{host}:{port}"
    os.environ.update({"AYNI_DB_URL": url, "AYNI_PUBLIC_URI": uri,
                       "AYNI_PUBLIC_HOST": uri.split("://", 1)[-1].rstrip("/")})
    if contract:
        os.environ["AYNI_ANCHOR_CONTRACT"] = normalize_address(contract, what="contract")
    uvicorn.run("api.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)


# -- anchoring ----------------------------------------------------------------------
chain_app = typer.Typer(no_args_is_help=True, help="The chain Ayni anchors to: keys and the Anchor contract.")
app.add_typer(chain_app, name="chain")


def _password(password_file: Path | None, *, confirm: bool = False) -> str:
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\n")
        except OSError as exc:
            _fail(f"cannot read password file {password_file}: {exc.strerror}")
    if os.environ.get("AYNI_ANCHOR_PASSWORD"):
        return os.environ["AYNI_ANCHOR_PASSWORD"]
    if not sys.stdin.isatty():
        _fail("no passphrase: give --password-file or set AYNI_ANCHOR_PASSWORD")
    return typer.prompt("keystore passphrase", hide_input=True, confirmation_prompt=confirm)


def _chain(url: str | None, keystore: Path | None, password_file: Path | None, contract: str | None,
           *, need_key: bool = True, need_contract: bool = True):
    from .chain import AnchorChain
    from .chain.keys import load_keystore
    if not url:
        _fail("anchoring needs --chain URL (or AYNI_CHAIN_URL): the embedded chain lives only inside "
              "one process, as in `ayni demo`")
    key = None
    if need_key:
        if keystore is None:
            _fail("anchoring needs the anchoring key: --keystore PATH (or AYNI_ANCHOR_KEYSTORE)")
        key = load_keystore(str(keystore), _password(password_file))
    if need_contract and not contract:
        _fail("no Anchor contract: give --contract ADDRESS (or AYNI_ANCHOR_CONTRACT); deploy one with "
              "`ayni chain deploy`")
    if contract:
        contract = normalize_address(contract, what="contract")
    return AnchorChain.connect(url, private_key=key, contract_address=contract)


@chain_app.command("new-key")
def chain_new_key(keystore: Path = typer.Option(..., help="Where to write the encrypted keystore"),
                  password_file: Path = typer.Option(None, help=PASSWORD_HELP)) -> None:
    """Create an anchoring key as an encrypted V3 keystore (scrypt); prints its address only."""
    from .chain.keys import write_keystore
    from .core.typed_data import address_of_key
    from .signing import new_key
    if keystore.exists():
        _fail(f"{keystore} exists; refusing to overwrite a key")
    key = new_key()
    write_keystore(str(keystore), key, _password(password_file, confirm=True))
    typer.echo(address_of_key(key))


@chain_app.command("deploy")
def chain_deploy(chain: str = typer.Option(None, "--chain", envvar="AYNI_CHAIN_URL", help=CHAIN_HELP),
                 keystore: Path = typer.Option(None, envvar="AYNI_ANCHOR_KEYSTORE", help=KEYSTORE_HELP),
                 password_file: Path = typer.Option(None, help=PASSWORD_HELP),
                 admin: str = typer.Option(None, help="Admin of the contract (default: the anchoring key)")) -> None:
    """Deploy the Anchor contract; the anchoring key becomes its anchorer."""
    c = _chain(chain, keystore, password_file, None, need_contract=False)
    address, gas = c.deploy(admin=normalize_address(admin, what="admin") if admin else None)
    typer.echo(f"Anchor deployed at {address} on chain {c.chain_id} ({gas} gas)\n"
               f"export AYNI_ANCHOR_CONTRACT={address}")


def _print_anchor_report(report, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(asdict(report)))
        return
    gas = f", gas per anchor {min(report.gas_used)}-{max(report.gas_used)}" if report.gas_used else ""
    typer.echo(f"sent {report.sent} batches, confirmed {report.confirmed}, failed {report.failed}, "
               f"adopted {report.adopted}{gas}; anchored through seq {report.anchored_through} of "
               f"{report.head_seq}{' (a batch is still pending)' if report.pending else ''}")


@app.command()
def anchor(db: str = typer.Option(None, "--db", help=DB_HELP),
           chain: str = typer.Option(None, "--chain", envvar="AYNI_CHAIN_URL", help=CHAIN_HELP),
           contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP),
           keystore: Path = typer.Option(None, envvar="AYNI_ANCHOR_KEYSTORE", help=KEYSTORE_HELP),
           password_file: Path = typer.Option(None, help=PASSWORD_HELP),
           max_batch: int = typer.Option(1000, min=1, help="Entries per batch at most"),
           confirmations: int = typer.Option(1, min=1, help="Blocks before a batch counts as confirmed"),
           watch: bool = typer.Option(False, help="Keep anchoring every --interval seconds (Ctrl-C stops)"),
           interval: float = typer.Option(30.0, min=0.1, help="Seconds between rounds with --watch"),
           min_entries: int = typer.Option(1, min=1, help="With --watch, anchor once this many entries wait"),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output")) -> None:
    """Anchor every entry not yet anchored, in batches of at most --max-batch."""
    from .anchoring import Anchoring
    from .chain import ChainError
    from .service import Ledger
    ledger = Ledger.open(resolve_url(db), migrate=False)
    c = _chain(chain, keystore, password_file, contract)
    job = Anchoring(ledger, c, max_batch=max_batch, confirmations=confirmations)
    if not watch:
        try:
            report = job.run()
        except ChainError as exc:
            _fail(f"{exc.code}: {exc}")
        _print_anchor_report(report, as_json)
        raise typer.Exit(0 if not report.pending else 3)
    import signal
    import threading
    from .anchoring import watch as watch_loop
    stop = threading.Event()
    # Ctrl-C / SIGTERM: finish the batch in hand, then stop (never leave a batch half-recorded).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    watch_loop(job, interval=interval, min_entries=min_entries, stop=stop,
               on_report=lambda r: _print_anchor_report(r, as_json),
               on_error=lambda m: err.print(f"[yellow]anchoring:[/] {m}"))


@app.command()
def receipt(seq: int = typer.Argument(..., help="Entry seq (e.g. a transfer's seq)"),
            db: str = typer.Option(None, "--db", help=DB_HELP),
            contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP),
            out: Path = typer.Option(None, help="Write the receipt here (default: print it)")) -> None:
    """Write the JSON receipt proving entry SEQ is in an anchored batch."""
    from .anchoring import Anchoring
    from .service import Ledger
    ledger = Ledger.open(resolve_url(db), migrate=False)
    if not contract:
        _fail("which Anchor contract? give --contract ADDRESS (or AYNI_ANCHOR_CONTRACT)")
    doc = Anchoring(ledger, contract=normalize_address(contract, what="contract")).receipt(seq)
    text = json.dumps(doc, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"receipt for entry {seq} written to {out}")


@app.command("export-log")
def export_log_cmd(out: Path = typer.Option(..., "--out", help="File to write (JSON Lines; replaced atomically)"),
                   db: str = typer.Option(None, "--db", help=DB_HELP),
                   contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP)) -> None:
    """Export the log with the balance sheet and anchor records, for `ayni-wallet reconcile --log`.

    An auditor holding the file needs no access to the server."""
    from .log_export import export_log
    from .service import Ledger
    try:
        summary = export_log(Ledger.open(resolve_url(db), migrate=False), out, anchor_contract=contract)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror}")
    typer.echo(f"exported {summary['entries']} entries (head seq {summary['headSeq']}) to {out}")


# Command groups that live in their own modules (cost report, data policy, retention, bench).
def _register_optional_commands() -> None:
    import importlib
    for name in ("cli_costs", "cli_privacy", "cli_bench"):
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        module.register(app)


_register_optional_commands()


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
    except Exception as exc:  # chain adapter faults carry a code; anything else is a bug
        from .chain.errors import ChainError  # the reader's and the writer's faults alike
        if isinstance(exc, ChainError):
            err.print(f"[red]error:[/] {exc.code}: {exc}")
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
