"""`ayni demo --federation`: two communities on embedded SQLite, in this one process, link by an
alliance both treasurers sign, and their members pay each other both ways.

Everything is real but the sockets: keys, EIP-712 signatures, the node-signed protocol
messages and both logs are what two `ayni serve` would produce; the messages go from one
FederationNode to the other through ledger/federation/local.py instead of HTTP. It ends as a
treasurer would: both logs exported, and `ayni-wallet reconcile-peer` run on the two files."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .. import signing
from ..community import new_genesis
from ..core import errors as E
from ..core.federation import Alliance, RemoteTransfer, peer_address
from ..core.typed_data import address_of_key, sign_digest
from ..federation.driver import send_payment_now
from ..federation.local import LocalNetwork
from ..federation.runtime import open_federation
from ..log_export import export_log
from ..service import Ledger

COMMUNITIES = (("Cuidados Andinos", "http://cuidados.coop.example", ["Amaru", "Killa", "Rosa"]),
               ("Banco de Tiempo Sur", "http://tiempo-sur.example", ["Inti", "Wayra", "Nina"]))
PEER_LIMIT = 600  # minutes of HOUR each community lets the other owe it


class Community:
    def __init__(self, path: Path, name: str, url: str, members: list[str], network: LocalNetwork):
        path.unlink(missing_ok=True)
        self.name, self.url = name, url
        self.treasurer_key = signing.new_key()
        self.ledger = Ledger.open(f"sqlite:///{path}")
        self.ledger.initialise(new_genesis(name, address_of_key(self.treasurer_key)))
        self.domain = self.ledger.genesis.domain
        self.members = {m: signing.new_key() for m in members}
        for key in self.members.values():
            self.ledger.submit(signing.open_account(self.treasurer_key, self.domain, account=address_of_key(key)))
            self.ledger.submit(signing.set_limit(self.treasurer_key, self.domain, account=address_of_key(key),
                                                 currency="HOUR", credit_limit=300, ceiling=3000))
        self.fed = open_federation(self.ledger, signing.new_key(), url, send=network.send,
                                   timeout_ms=5_000, retry_ms=200)
        network.register(url, self.fed.node)

    def sign(self, struct_hash: bytes, key: bytes | None = None) -> str:
        return sign_digest(key or self.treasurer_key, self.domain.digest(struct_hash))

    def balance(self, address: str) -> int:
        pos = self.ledger.positions(address).get((address, "HOUR"))
        return pos.balance if pos is not None else 0


def _ally(a: Community, b: Community, console: Console) -> str:
    terms = Alliance.create(community_a=a.domain.salt, chain_id_a=a.domain.chain_id, node_a=a.fed.node.address,
                            url_a=a.url, community_b=b.domain.salt, chain_id_b=b.domain.chain_id,
                            node_b=b.fed.node.address, url_b=b.url,
                            pairs=[{"currencyA": "HOUR", "currencyB": "HOUR", "unitsA": 1, "unitsB": 1,
                                    "limitA": PEER_LIMIT, "limitB": PEER_LIMIT}],
                            nonce=time.time_ns(), valid_until=int(time.time()) + 3600)
    proposal = a.fed.node.propose(terms.message(), a.sign(terms.struct_hash()))
    b.fed.node.receive_proposal(proposal)
    alliance_id = "0x" + terms.alliance_id.hex()
    acceptance = b.fed.node.accept(alliance_id, b.sign(terms.struct_hash()))
    a.fed.node.receive_acceptance(acceptance)
    console.print(f"alliance [bold]{alliance_id[:18]}…[/] HOUR 1:1, each side may owe the other up to "
                  f"{PEER_LIMIT} min: signed by both treasurers, recorded in both logs")
    return alliance_id


def _pay(origin: Community, dest: Community, payer: str, payee: str, minutes: int, console: Console,
         delivered: int | None = None) -> str:
    t = RemoteTransfer.create(payer=address_of_key(origin.members[payer]), payee_community=dest.domain.salt,
                              payee=address_of_key(dest.members[payee]), currency="HOUR", amount=minutes,
                              payee_currency="HOUR", delivered=minutes if delivered is None else delivered,
                              nonce=time.time_ns(), valid_until=int(time.time()) + 600)
    what = f"{payer} ({origin.name}) pays {payee} ({dest.name}) {minutes} min"
    try:
        leg = origin.fed.node.submit(t.message(), origin.sign(t.struct_hash(), origin.members[payer]))
        if leg.get("state") == "prepared":
            leg = send_payment_now(origin.fed.transport, leg, wait_s=1.0)
    except E.LedgerError as exc:
        console.print(f"  [red]refused[/] {what}: {exc.code}")
        return exc.code
    state = leg.get("state")
    console.print(f"  {'[green]' if state == 'committed' else '[red]'}{state}[/] {what}")
    return state


def run_federation_demo(db_dir: Path, console: Console | None = None) -> dict:
    console = console or Console()
    db_dir.mkdir(parents=True, exist_ok=True)
    network = LocalNetwork()
    a, b = (Community(db_dir / f"federation-{i}.db", name, url, members, network)
            for i, (name, url, members) in zip("ab", COMMUNITIES))
    console.rule("Two cooperatives, two nodes, two ledgers")
    _ally(a, b, console)
    console.rule("Remote payments, both ways (two-phase commit between the nodes)")
    outcomes = [_pay(a, b, "Amaru", "Inti", 90, console), _pay(b, a, "Wayra", "Killa", 45, console),
                _pay(a, b, "Rosa", "Nina", 120, console), _pay(b, a, "Inti", "Amaru", 30, console)]
    console.print("Refusals, nothing written on either side:")
    refused = [_pay(a, b, "Killa", "Wayra", 10, console, delivered=12),   # not the alliance's rate
               _pay(b, a, "Nina", "Rosa", 450, console)]                  # beyond Nina's credit limit
    ok = outcomes == ["committed"] * 4 and refused == ["rate_mismatch", "credit_limit_exceeded"]
    console.rule("Both ledgers")
    for c, other in ((a, b), (b, a)):
        table = Table(title=c.name)
        table.add_column("account")
        table.add_column("HOUR (min)", justify="right")
        for name, key in c.members.items():
            table.add_row(name, str(c.balance(address_of_key(key))))
        peer = peer_address(other.domain.salt)
        table.add_row(f"peer: {other.name}", str(c.balance(peer)))
        console.print(table)
        report = c.ledger.verify()
        ok &= report.ok
        console.print(f"{c.name}: log verifies, zero-sum: {'[green]yes' if report.ok else '[red]NO'}[/]")
    a_for_b, b_for_a = a.balance(peer_address(b.domain.salt)), b.balance(peer_address(a.domain.salt))
    mirrored = a_for_b == -b_for_a
    ok &= mirrored
    console.print(f"peer accounts mirror each other: {a.name} holds {a_for_b} for {b.name}, "
                  f"{b.name} holds {b_for_a} for {a.name}: {'[green]yes' if mirrored else '[red]NO'}[/]")
    console.print(f"in flight: {len(a.fed.node.pending()) + len(b.fed.node.pending())} (nothing is left pending)")
    console.rule("Community A's treasurer reconciles both logs (`ayni-wallet reconcile-peer`)")
    exports = []
    for c, name in ((a, "a"), (b, "b")):
        exports.append(db_dir / f"federation-{name}.log.jsonl")
        export_log(c.ledger, exports[-1])
    for c in (a, b):
        c.ledger.close()
    console.print(f"`ayni export-log` wrote {exports[0]} and {exports[1]}; the wallet reads them with ledger.core only")
    code = reconcile_peer_exports(*exports)
    ok &= code == 0
    console.print(f"reconcile-peer: {'[green]passed' if code == 0 else f'[red]FAILED (exit {code})'}[/]")
    return {"ok": ok, "outcomes": outcomes, "refused": refused, "peer_balances": [a_for_b, b_for_a],
            "databases": [str(db_dir / "federation-a.db"), str(db_dir / "federation-b.db")],
            "reconcile_peer": code, "exports": [str(p) for p in exports]}


def reconcile_peer_exports(own: Path, peer: Path) -> int:
    """`ayni-wallet reconcile-peer --log OWN --peer-log PEER`, run in this process through the
    wallet's own command (its parsing, its report, its exit code): 0 when both sides agree."""
    from wallet_cli.main import app as wallet
    sys.stdout.flush()  # the console's lines first, then the wallet's
    try:
        code = wallet(["reconcile-peer", "--log", str(own), "--peer-log", str(peer)], prog_name="ayni-wallet",
                      standalone_mode=False)
    except SystemExit as exc:  # the wallet's fail() on unreadable input
        code = exc.code if isinstance(exc.code, int) else 2
    sys.stdout.flush()
    return code or 0
