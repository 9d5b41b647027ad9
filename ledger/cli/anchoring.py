"""`ayni chain new-key`, `chain deploy`, `anchor`, `receipt`: the chain Ayni anchors to."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import typer

from ..core.addresses import normalize_address
from .options import AsJson, Db, fail, open_ledger, say

CONTRACT_HELP = "Address of the Anchor contract (default: $AYNI_ANCHOR_CONTRACT)"
CHAIN_HELP = "JSON-RPC URL of an Ethereum-compatible node (default: $AYNI_CHAIN_URL)"
KEYSTORE_HELP = "Encrypted V3 keystore of the anchoring key (default: $AYNI_ANCHOR_KEYSTORE)"
PASSWORD_HELP = "File holding the keystore passphrase (else $AYNI_ANCHOR_PASSWORD, else a hidden prompt)"


def _password(password_file: Path | None, *, confirm: bool = False) -> str:
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\n")
        except OSError as exc:
            fail(f"cannot read password file {password_file}: {exc.strerror}")
    if os.environ.get("AYNI_ANCHOR_PASSWORD"):
        return os.environ["AYNI_ANCHOR_PASSWORD"]
    if not sys.stdin.isatty():
        fail("no passphrase: give --password-file or set AYNI_ANCHOR_PASSWORD")
    return typer.prompt("keystore passphrase", hide_input=True, confirmation_prompt=confirm)


def connect_chain(url: str | None, keystore: Path | None, password_file: Path | None, contract: str | None,
                  *, need_key: bool = True, need_contract: bool = True):
    """The chain adapter for --chain/--keystore/--contract, or a one-line error naming what is missing."""
    from ..chain import AnchorChain
    from ..chain.keys import load_keystore
    if not url:
        fail("anchoring needs --chain URL (or AYNI_CHAIN_URL): the embedded chain lives only inside "
             "one process, as in `ayni demo`")
    key = None
    if need_key:
        if keystore is None:
            fail("anchoring needs the anchoring key: --keystore PATH (or AYNI_ANCHOR_KEYSTORE)")
        key = load_keystore(str(keystore), _password(password_file))
    if need_contract and not contract:
        fail("no Anchor contract: give --contract ADDRESS (or AYNI_ANCHOR_CONTRACT); deploy one with "
             "`ayni chain deploy`")
    if contract:
        contract = normalize_address(contract, what="contract")
    return AnchorChain.connect(url, private_key=key, contract_address=contract)


def chain_new_key(keystore: Path = typer.Option(..., help="Where to write the encrypted keystore"),
                  password_file: Path = typer.Option(None, help=PASSWORD_HELP)) -> None:
    """Create an anchoring key as an encrypted V3 keystore (scrypt); prints its address only."""
    from ..chain.keys import write_keystore
    from ..core.typed_data import address_of_key
    from ..signing import new_key
    if keystore.exists():
        fail(f"{keystore} exists; refusing to overwrite a key")
    key = new_key()
    write_keystore(str(keystore), key, _password(password_file, confirm=True))
    say(address_of_key(key))


ADMIN_HELP = ("Admin of the contract: another key than the anchoring key, kept cold (hardware wallet, multisig); "
              "it retires the contract if the anchoring key leaks and manages standby keys. "
              "0x0000000000000000000000000000000000000000 deploys without an admin")
SINGLE_KEY_HELP = ("Local development chains only (chain id 1337 or 31337): let the anchoring key be the admin too (a leaked anchoring key "
                   "could then renounce the admin role or add anchoring keys, and nobody could retire the contract)")
NEEDS_ADMIN = ("`ayni chain deploy` needs --admin ADDRESS, another key than the anchoring key, kept cold: the admin "
               "retires the contract if the anchoring key leaks (docs/anchoring.md). For a throwaway test chain only, "
               "--single-key-for-testing lets the anchoring key be the admin too")
ZERO_ADDRESS = "0x" + "00" * 20
DEV_CHAIN_IDS = (1337, 31337)  # Ganache/Geth dev, Hardhat/Anvil: where --single-key-for-testing is allowed


def chain_deploy(chain: str = typer.Option(None, "--chain", envvar="AYNI_CHAIN_URL", help=CHAIN_HELP),
                 keystore: Path = typer.Option(None, envvar="AYNI_ANCHOR_KEYSTORE", help=KEYSTORE_HELP),
                 password_file: Path = typer.Option(None, help=PASSWORD_HELP),
                 admin: str = typer.Option(None, help=ADMIN_HELP),
                 single_key_for_testing: bool = typer.Option(False, "--single-key-for-testing",
                                                             help=SINGLE_KEY_HELP)) -> None:
    """Deploy the Anchor contract: the anchoring key becomes its anchorer, --admin its admin."""
    from ..chain import AdminIsAnchorer
    if admin is None and not single_key_for_testing:
        fail(NEEDS_ADMIN)
    admin_addr = normalize_address(admin, what="admin") if admin is not None else None  # "" is no address
    c = connect_chain(chain, keystore, password_file, None, need_contract=False)
    if single_key_for_testing and c.chain_id not in DEV_CHAIN_IDS:
        fail(f"--single-key-for-testing is for a local development chain (chain id 1337 or 31337), not chain id "
             f"{c.chain_id}: give --admin ADDRESS, another (cold) key than the anchoring key")
    if admin_addr == c.sender and not single_key_for_testing:
        fail(f"--admin {admin_addr} is the anchoring key itself: a leaked anchoring key could then renounce the "
             "admin role or add anchoring keys, and nobody could retire the contract. Give another (cold) key "
             "as --admin (or, for a throwaway test chain only, --single-key-for-testing)")
    try:
        address, gas = c.deploy(admin=admin_addr, single_key_for_testing=single_key_for_testing)
    except AdminIsAnchorer as exc:  # the adapter holds the same rule
        fail(f"{exc.code}: {exc}")
    admin_note = ("no admin: nobody can retire it or add standby keys" if admin_addr == ZERO_ADDRESS else
                  f"admin {admin_addr or c.sender}" + (" (the anchoring key itself: testing only)"
                                                       if (admin_addr or c.sender) == c.sender else ""))
    say(f"Anchor deployed at {address} on chain {c.chain_id} ({gas} gas); anchoring key {c.sender}, {admin_note}\n"
        f"export AYNI_ANCHOR_CONTRACT={address}")


def _print_anchor_report(report, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(asdict(report)))
        return
    gas = f", gas per anchor {min(report.gas_used)}-{max(report.gas_used)}" if report.gas_used else ""
    say(f"sent {report.sent} batches, confirmed {report.confirmed}, failed {report.failed}, "
               f"adopted {report.adopted}{gas}; anchored through seq {report.anchored_through} of "
               f"{report.head_seq}{' (a batch is still pending)' if report.pending else ''}")


def anchor(db: Db = None,
           chain: str = typer.Option(None, "--chain", envvar="AYNI_CHAIN_URL", help=CHAIN_HELP),
           contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP),
           keystore: Path = typer.Option(None, envvar="AYNI_ANCHOR_KEYSTORE", help=KEYSTORE_HELP),
           password_file: Path = typer.Option(None, help=PASSWORD_HELP),
           max_batch: int = typer.Option(1000, min=1, max=2**20, help="Entries per batch at most (up to 2**20: verifiers treat a larger batch as hostile)"),
           confirmations: int = typer.Option(1, min=1, help="Blocks before a batch counts as confirmed"),
           watch: bool = typer.Option(False, help="Keep anchoring every --interval seconds (Ctrl-C stops)"),
           interval: float = typer.Option(30.0, min=0.1, help="Seconds between rounds with --watch"),
           min_entries: int = typer.Option(1, min=1, help="With --watch, anchor once this many entries wait"),
           as_json: AsJson = False) -> None:
    """Anchor every entry not yet anchored, in batches of at most --max-batch."""
    from ..anchoring import Anchoring
    from ..chain import ChainError
    ledger = open_ledger(db)
    c = connect_chain(chain, keystore, password_file, contract)
    job = Anchoring(ledger, c, max_batch=max_batch, confirmations=confirmations)
    if not watch:
        try:
            report = job.run()
        except ChainError as exc:
            fail(f"{exc.code}: {exc}")
        _print_anchor_report(report, as_json)
        raise typer.Exit(0 if not report.pending else 3)
    import signal
    import threading
    from ..anchoring import watch as watch_loop
    stop = threading.Event()
    # Ctrl-C / SIGTERM: finish the batch in hand, then stop (never leave a batch half-recorded).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    watch_loop(job, interval=interval, min_entries=min_entries, stop=stop,
               on_report=lambda r: _print_anchor_report(r, as_json),
               on_error=lambda m: say(f"anchoring: {m}", err=True))


def receipt(seq: int = typer.Argument(..., help="Entry seq (e.g. a transfer's seq)"),
            db: Db = None,
            contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP),
            out: Path = typer.Option(None, help="Write the receipt here (default: print it)")) -> None:
    """Write the JSON receipt proving entry SEQ is in an anchored batch."""
    from ..anchoring import Anchoring
    ledger = open_ledger(db)
    if not contract:
        fail("which Anchor contract? give --contract ADDRESS (or AYNI_ANCHOR_CONTRACT)")
    doc = Anchoring(ledger, contract=normalize_address(contract, what="contract")).receipt(seq)
    text = json.dumps(doc, indent=2)
    if out is None:
        typer.echo(text)  # JSON: json.dumps already escapes every control character
    else:
        from ..files import write_atomic
        write_atomic(out, text + "\n", mode=0o644)  # a member keeps this file: never half of one
        say(f"receipt for entry {seq} written to {out}")
