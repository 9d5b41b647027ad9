"""`ayni demo`: a small care cooperative on embedded SQLite, end to end.

Keys are generated, every action is signed as a real member would sign it, and the
refusals shown are real refusals from the rules, not printed text. The last step is the
treasurer's reconciliation of an export against the chain, as `ayni-wallet reconcile` does."""
from __future__ import annotations

import json
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .. import signing
from ..community import new_genesis
from ..core import errors as E
from ..core.typed_data import Transfer, address_of_key, sign_action
from ..service import Ledger
from .options import fail_error, database_url, fail, sqlite_path

CARERS = ["Amaru", "Killa", "Rosa", "Inti", "Wayra", "Nina"]
CLIENTS = ["Don Julio", "Señora Luz", "Mateo", "Carmen", "Ana", "Tomás"]
SHOPS = ["Panadería Sol", "Verdulería Pacha", "Farmacia Andina"]


@dataclass
class Person:
    name: str
    role: str
    key: bytes

    @property
    def address(self) -> str:
        return address_of_key(self.key)


DEFAULT_DEMO_DB = "sqlite:///ayni-data/demo.db"
DEMO_COMMUNITY = "Cuidado Mutuo (demo)"


# Not the shared --db option: the demo deletes its database first, so it must never default
# to $AYNI_DB_URL (a real community's); it takes a URL as every command does.
def demo(db: str = typer.Option(DEFAULT_DEMO_DB, "--db", help="SQLite database the demo recreates: a sqlite:/// "
                                "URL (or a file path)"),
         transfers: int = typer.Option(300, min=1, max=100_000, help="Random transfers to attempt"),
         seed: int = typer.Option(None, help="Random seed for a repeatable run"),
         federation: bool = typer.Option(False, "--federation", help="Instead: two allied communities paying "
                                         "each other across their two ledgers (docs/federation.md)")) -> None:
    """Run a small care cooperative end to end on embedded SQLite."""
    if federation:
        from .demo_federation import run_federation_demo
        if not run_federation_demo(demo_file(db).parent)["ok"]:
            fail("an invariant failed: see above")
        return
    try:
        result = run_demo(database_url(db), transfers=transfers, seed=seed)
    except E.InvalidInput as exc:
        fail_error(exc)
    if not result["ok"]:
        fail("an invariant failed: see above")
    if not _reconcile(result):
        fail("the treasurer's reconciliation found discrepancies: see above")


def demo_file(db: str) -> Path:
    """The SQLite file a --db value names: a sqlite:/// URL or a bare path (options.database_url)."""
    path = sqlite_path(database_url(db))
    if path is None:
        raise E.InvalidInput(f"the demo runs on an SQLite file it recreates; {db!r} is not one "
                             "(e.g. sqlite:///ayni-data/demo.db)")
    return path


def refuse_unless_demo(path: Path) -> None:
    """The demo deletes its database first: only a previous demo's may be deleted. `--db` pointed
    at a real community's file by mistake must not cost the community its books, so anything
    else that holds data (another community, a file that is not an SQLite database, another
    application's tables) is refused. An empty file or an Ayni schema without a community is fine."""
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    refusal = E.InvalidInput(f"{path} holds data that is not a previous demo's; the demo deletes its "
                             "database, so give it a new file (e.g. --db sqlite:///ayni-data/demo.db)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            genesis = conn.execute("SELECT body FROM entries WHERE seq = 1").fetchone() if "entries" in tables else None
        finally:
            conn.close()
        community = json.loads(genesis[0]).get("community") if genesis else None
    except (sqlite3.Error, ValueError, AttributeError):
        raise refusal from None  # not an SQLite database, or not one of ours: not ours to delete
    if genesis is None and ("entries" in tables or not tables):
        return  # an Ayni schema no community was created in, or an empty database
    if community != DEMO_COMMUNITY:
        raise refusal


def run_demo(db: str = DEFAULT_DEMO_DB, *, transfers: int = 300, seed: int | None = None,
             console: Console | None = None) -> dict:
    """`db`: an SQLite URL or file path; the file is deleted first (every demo is a fresh cooperative)."""
    console = console or Console()
    rng = random.Random(seed)
    path = demo_file(db)
    refuse_unless_demo(path)
    for suffix in ("", "-wal", "-shm"):  # the demo always starts a fresh cooperative
        Path(str(path) + suffix).unlink(missing_ok=True)
    ledger = Ledger.open(f"sqlite:///{path}")

    treasurer = Person("Treasurer", "treasurer", signing.new_key())
    people = ([Person(n, "member", signing.new_key()) for n in CARERS + CLIENTS]
              + [Person(n, "shop", signing.new_key()) for n in SHOPS])
    ledger.initialise(new_genesis(DEMO_COMMUNITY, treasurer.address))
    domain = ledger.genesis.domain
    console.rule("[bold]Ayni demo: Cuidado Mutuo, a care cooperative")
    console.print(f"database [cyan]{path}[/]  community id (EIP-712 salt) [cyan]0x{domain.salt.hex()[:16]}…[/]")

    for p in people:
        ledger.submit(signing.open_account(treasurer.key, domain, account=p.address, role=p.role))
        ledger.set_profile(p.address, display_name=p.name)
    ledger.set_profile(treasurer.address, display_name=treasurer.name)
    console.print(f"opened {len(people)} accounts (6 carers, 6 clients, 3 shops), each signed by the treasurer")

    carers, clients = people[:6], people[6:12]
    members, shops = people[:12], people[12:]
    posted = refused = 0
    refusals: dict[str, int] = {}
    started = time.perf_counter()
    for _ in range(transfers):
        kind = rng.random()
        if kind < 0.35:  # a client pays a carer for a visit, in minutes
            payer, payee = rng.choice(clients), rng.choice(carers)
            sub = signing.transfer(payer.key, domain, payee=payee.address, currency="HOUR",
                                   amount=rng.choice([30, 45, 60, 90, 120]), memo="home visit")
        elif kind < 0.55:  # time banking runs both ways: carers receive help too
            payer, payee = rng.sample(members, 2)
            sub = signing.transfer(payer.key, domain, payee=payee.address, currency="HOUR",
                                   amount=rng.choice([15, 30, 60, 120]), memo="help with errands")
        elif kind < 0.8:  # a member buys at a shop
            payer, payee = rng.choice(members), rng.choice(shops)
            sub = signing.transfer(payer.key, domain, payee=payee.address, currency="CRED",
                                   amount=rng.randint(150, 2500))
        else:  # a shop buys a member's produce or pays for work
            payer, payee = rng.choice(shops), rng.choice(members)
            sub = signing.transfer(payer.key, domain, payee=payee.address, currency="CRED",
                                   amount=rng.randint(500, 4000))
        try:
            ledger.submit(sub)
            posted += 1
        except E.LedgerError as exc:
            refused += 1
            refusals[exc.code] = refusals.get(exc.code, 0) + 1
    elapsed = time.perf_counter() - started
    console.print(f"posted [green]{posted}[/] signed transfers, [yellow]{refused}[/] refused by the rules "
                  f"{dict(sorted(refusals.items()))} in {elapsed:.2f} s")

    console.rule("Refusals a member may meet")
    shown = _show_refusals(ledger, domain, treasurer, carers, clients, shops, console)

    _print_balances(ledger, console)
    anchoring = _anchor(ledger, console, posted)
    from ..costs import demo_cost_summary
    console.rule("What this would cost per month")
    for line in demo_cost_summary(len(people), posted, chain=anchoring["chain"],
                                  anchor_gas=anchoring["gas_per_anchor"]):
        console.print(line)
    # the exchange board (ledger/cli/demo_exchange.py): listings, one arrangement through payment
    from . import demo_exchange
    console.rule("The exchange board")
    board = demo_exchange.run(ledger, domain, carers, clients, shops, console)
    report = ledger.verify()
    console.rule("Invariants")
    console.print(f"hash chain over {report.entries} entries: "
                  + ("[green]intact[/]" if not report.chain_faults else f"[red]{report.chain_faults}[/]"))
    console.print("replay from seq 1 (every signature and rule re-checked) reproduces stored balances: "
                  + ("[green]yes[/]" if not (report.replay_faults or report.balance_faults)
                     else f"[red]{report.replay_faults or report.balance_faults}[/]"))
    console.print("every currency sums to zero: "
                  + ("[green]yes[/]" if not report.zero_sum_faults else f"[red]{report.zero_sum_faults}[/]"))
    ok = report.ok and anchoring["receipt_ok"]
    return {"posted": posted, "refused": refused, "refusals": refusals, "shown": shown,
            "entries": report.entries, "ok": ok, "db": str(path), "anchoring": anchoring, "board": board}


def _anchor(ledger: Ledger, console: Console, transfers: int) -> dict:
    """Anchor the whole log on the embedded EVM, then prove one payment with a receipt."""
    from ..anchoring import Anchoring
    from ..chain import AnchorChain
    from ..core.receipts import verify_receipt
    console.rule("Anchoring on the embedded EVM (py-evm)")
    chain = AnchorChain.embedded()
    address, deploy_gas = chain.deploy()
    report = Anchoring(ledger, chain, max_batch=64).run()
    total = sum(report.gas_used)
    console.print(f"Anchor contract {address} deployed ({deploy_gas:,} gas); {report.confirmed} batches of ≤64 "
                  f"entries anchored through seq {report.anchored_through}")
    console.print(f"gas per anchor: {min(report.gas_used):,}–{max(report.gas_used):,}; gas per transfer: "
                  f"{total / max(transfers, 1):,.0f} (all {report.anchored_through} entries, {total:,} gas in all)")
    seq = next(e.seq for e in ledger.iter_entries() if e.kind == "transfer.posted")
    receipt = Anchoring(ledger, chain).receipt(seq)
    problems = verify_receipt(receipt, chain)
    console.print(f"receipt for transfer seq {seq}: leaf {receipt['leaf'][:12]}…, proof of "
                  f"{len(receipt['proof'])} hashes, root {receipt['root'][:12]}… → "
                  + ("[green]verified against the chain[/]" if not problems else f"[red]{problems}[/]"))
    console.print("on chain: only roots and sequence numbers; no address, name or memo leaves the cooperative")
    return {"contract": address, "deploy_gas": deploy_gas, "batches": report.confirmed,
            "gas_per_anchor": report.gas_used, "gas_total": total, "receipt_ok": not problems,
            "chain": chain}


def _show_refusals(ledger, domain, treasurer, carers, clients, shops, console) -> dict[str, str]:
    shown: dict[str, str] = {}

    def attempt(label: str, sub) -> None:
        try:
            result = ledger.submit(sub)
            verdict = f"[green]accepted[/] (seq {result.seq}{', idempotent retry' if result.duplicate else ''})"
            shown[label] = "duplicate" if result.duplicate else "posted"
        except E.LedgerError as exc:
            verdict = f"[red]refused[/] [bold]{exc.code}[/]: {exc.message}"
            shown[label] = exc.code
        console.print(f"• {label}: {verdict}")

    client, carer = clients[0], carers[0]
    room = sum(p.balance + p.credit_limit for (a, c), p in ledger.positions(client.address).items() if c == "HOUR")
    attempt(f"{client.name} pays {room + 60} min, 1 h more than the credit limit allows",
            signing.transfer(client.key, domain, payee=carer.address, currency="HOUR", amount=room + 60))
    # A thief signs "the client pays me" with their own key.
    t = Transfer.create(payer=client.address, payee=carers[1].address, currency="HOUR", amount=60,
                        nonce=signing.new_nonce(), valid_until=int(time.time()) + 600)
    attempt(f"{carers[1].name} forges a payment from {client.name}",
            signing.Submission(t, sign_action(carers[1].key, domain, t)))
    hour_room = {p.address: pos.balance + pos.credit_limit
                 for p in carers + clients for (a, c), pos in ledger.positions(p.address).items() if c == "HOUR"}
    payer = max((p for p in carers + clients if p is not carer), key=lambda p: hour_room[p.address])
    ok = signing.transfer(payer.key, domain, payee=carer.address, currency="HOUR", amount=30, memo="errand")
    attempt(f"{payer.name} pays {carer.name} 30 min", ok)
    attempt("the same signed payment is sent again (network retry)", ok)
    replay = signing.transfer(payer.key, domain, payee=carers[2].address, currency="HOUR", amount=30,
                              nonce=ok.action.nonce)
    attempt("a different payment reusing that nonce", replay)
    ledger.submit(signing.set_status(treasurer.key, domain, account=shops[2].address, status="frozen"))
    attempt(f"{clients[2].name} pays {shops[2].name}, whose account the treasurer froze",
            signing.transfer(clients[2].key, domain, payee=shops[2].address, currency="CRED", amount=500))
    attempt(f"{clients[2].name} pays a stranger with no account",
            signing.transfer(clients[2].key, domain, payee=address_of_key(signing.new_key()),
                             currency="CRED", amount=500))
    return shown


def _print_balances(ledger: Ledger, console: Console) -> None:
    names = ledger.profiles()
    currencies = ledger.currencies
    table = Table(title="Balances (negative = owes the community; limits in brackets)")
    table.add_column("member")
    table.add_column("role")
    for code in currencies:
        table.add_column(code, justify="right")
    positions = ledger.positions()
    for acct in ledger.accounts():
        cells = []
        for code, cur in currencies.items():
            p = positions[(acct.address, code)]
            ceiling = "∞" if p.ceiling is None else cur.format(p.ceiling)
            cells.append(f"{cur.format(p.balance)} [dim][{cur.format(-p.credit_limit)}, {ceiling}][/]")
        status = "" if acct.status == "active" else f" ({acct.status})"
        table.add_row(f"{names.get(acct.address) or acct.address[:10]}{status}", acct.role, *cells)
    console.print(table)


def _reconcile(result: dict) -> bool:
    """The demo's last step: the treasurer exports the log and reconciles it, independently of
    the service's code, against the chain (what `ayni-wallet reconcile` does)."""
    from wallet_cli.reconcile import reconcile, render
    from ..log_export import export_log
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
