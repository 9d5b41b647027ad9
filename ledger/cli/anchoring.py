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
    else:
        gas = f", gas per anchor {min(report.gas_used)}-{max(report.gas_used)}" if report.gas_used else ""
        extra = "".join(f", {n} {what}" for n, what in ((report.replaced, "replaced"), (report.dropped, "dropped by a reorg"))
                        if n)
        say(f"sent {report.sent} batches, confirmed {report.confirmed}, failed {report.failed}, "
            f"adopted {report.adopted}{extra}{gas}; anchored through seq {report.anchored_through} of "
            f"{report.head_seq}{' (a batch is still pending)' if report.pending else ''}")
    if report.postponed:
        say(f"anchoring {report.postponed}", err=True)
    for w in report.warnings:
        say(f"WARN: {w}", err=True)


PRESET_HELP = ("Chain preset (ledger/chain/presets.json): gnosis, base, optimism, arbitrum, sepolia, hardhat, dev. "
               "Sets the confirmations and the reorg re-check window, and refuses a node on another chain id")
MAX_FEE_HELP = ("Maximum fee per gas in gwei (e.g. 20): while base fee + tip is above it the next batch is postponed; "
                "replacements never pay more. Default: no maximum")


# The anchoring settings' environment variables (`ayni anchor` and `ayni serve --anchor-every`).
ANCHOR_ENV = ("AYNI_CHAIN_PRESET", "AYNI_MAX_FEE_GWEI", "AYNI_PRIORITY_FEE_GWEI", "AYNI_REPLACE_AFTER_S",
              "AYNI_MAX_REPLACEMENTS", "AYNI_RECHECK_BLOCKS", "AYNI_ANCHOR_DEADLINE", "AYNI_WARN_BATCHES")


def refuse_empty_env() -> None:
    """An anchoring variable set to an empty value is refused, not read as unset: an empty
    systemd `Environment=AYNI_MAX_FEE_GWEI=` would otherwise remove the fee cap without a word."""
    empty = [name for name in ANCHOR_ENV if name in os.environ and not os.environ[name].strip()]
    if empty:
        fail(f"{', '.join(empty)} {'is' if len(empty) == 1 else 'are'} set but empty: give a value or unset "
             "it (an empty value would silently mean no maximum fee / no preset)")


def anchor_settings(chain, *, chain_preset: str | None, max_fee_gwei: str | None, priority_fee_gwei: str | None,
                    confirmations: int | None, recheck_blocks: int | None, replace_after: float | None = None,
                    max_replacements: int | None = None, deadline: int | None = None,
                    warn_batches: int | None = None):
    """(Anchoring keyword arguments, preset or None) for the chain adapter `chain`: the preset's
    confirmations and re-check window unless given, fees in wei; a one-line failure for a preset
    whose chain id the node does not report, an unknown preset or a malformed fee."""
    from ..anchoring import (
        DEFAULT_MAX_REPLACEMENTS,
        DEFAULT_RECHECK_BLOCKS,
        DEFAULT_REPLACE_AFTER_S,
    )
    from ..chain import ChainError
    from ..chain import presets as P
    from ..chain.fees import to_wei_per_gas
    refuse_empty_env()
    preset = None
    try:
        if chain_preset:
            preset = P.get(chain_preset)
            preset.check_chain_id(chain.chain_id, getattr(chain, "_label", "the node"))
    except ChainError as exc:
        fail(f"{exc.code}: {exc}")
    try:
        max_fee = to_wei_per_gas(max_fee_gwei) if max_fee_gwei else None
        tip = to_wei_per_gas(priority_fee_gwei, allow_zero=True) if priority_fee_gwei else None
    except ValueError as exc:
        fail(f"invalid fee: {exc}")
    if max_fee is not None and tip is not None and tip > max_fee:
        fail(f"--priority-fee-gwei {priority_fee_gwei} is above --max-fee-gwei {max_fee_gwei}: nothing could be sent")
    if preset is not None and tip is None and hasattr(chain, "fallback_tip"):
        # the node may lack eth_maxPriorityFeePerGas: never fall back to more than the preset's typical fee
        chain.fallback_tip = min(chain.fallback_tip, to_wei_per_gas(f"{preset.typical_fee_gwei:f}"))
    kwargs = {
        "confirmations": confirmations or (preset.confirmations if preset else 1),
        "recheck_blocks": recheck_blocks if recheck_blocks is not None else
        (preset.recheck_blocks if preset else DEFAULT_RECHECK_BLOCKS),
        "max_fee_per_gas": max_fee, "priority_fee": tip,
        "replace_after_s": (replace_after if replace_after is not None else DEFAULT_REPLACE_AFTER_S) or None,
        "max_replacements": max_replacements if max_replacements is not None else DEFAULT_MAX_REPLACEMENTS}
    if kwargs["recheck_blocks"] and kwargs["confirmations"] > kwargs["recheck_blocks"]:
        fail(f"--confirmations {kwargs['confirmations']} is above --recheck-blocks {kwargs['recheck_blocks']}: a "
             "batch would be confirmed already outside the reorg re-check window and never re-checked; raise "
             "--recheck-blocks (or give 0 to never re-check)")
    if deadline is not None:
        kwargs["deadline_s"] = deadline
    if warn_batches is not None:
        kwargs["warn_batches"] = warn_batches
    return kwargs, preset


def _env_number(name: str, kind: type):
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None  # empty values are refused by refuse_empty_env first
    try:
        value = kind(raw)
    except ValueError:
        fail(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number")
    if not 0 <= value < float("inf"):
        fail(f"{name}={raw!r} must be 0 or more")
    return value


def anchor_settings_from_env(chain) -> dict:
    """Anchoring keyword arguments from $AYNI_CHAIN_PRESET, $AYNI_MAX_FEE_GWEI, $AYNI_PRIORITY_FEE_GWEI,
    $AYNI_REPLACE_AFTER_S, $AYNI_MAX_REPLACEMENTS, $AYNI_RECHECK_BLOCKS, $AYNI_ANCHOR_DEADLINE and
    $AYNI_WARN_BATCHES (for `ayni serve --anchor-every`, which has no such options)."""
    refuse_empty_env()
    return anchor_settings(chain, chain_preset=os.environ.get("AYNI_CHAIN_PRESET"),
                           max_fee_gwei=os.environ.get("AYNI_MAX_FEE_GWEI"),
                           priority_fee_gwei=os.environ.get("AYNI_PRIORITY_FEE_GWEI"),
                           confirmations=None, recheck_blocks=_env_number("AYNI_RECHECK_BLOCKS", int),
                           replace_after=_env_number("AYNI_REPLACE_AFTER_S", float),
                           max_replacements=_env_number("AYNI_MAX_REPLACEMENTS", int),
                           deadline=_env_number("AYNI_ANCHOR_DEADLINE", int),
                           warn_batches=_env_number("AYNI_WARN_BATCHES", int))[0]


def _native(wei: int) -> str:
    from decimal import Decimal
    text = f"{Decimal(wei) / Decimal(10**18):.18f}".rstrip("0").rstrip(".")
    return text or "0"


def eur_per_native(native: str, prices_file: Path | None):
    """(EUR per unit of `native`, how it was found) from the price file, or None when it holds no
    EUR rate (optional root field `eur_per_usd`: {value, as_of, source}) or no price for `native`."""
    from decimal import Decimal

    from ..costs import prices as prices_mod
    try:
        prices = prices_mod.load(prices_file)
        raw = json.loads(Path(prices.path).read_text(encoding="utf-8")).get("eur_per_usd")
    except (prices_mod.PricesError, OSError, ValueError) as exc:
        fail(f"prices: {exc}")
    if not isinstance(raw, dict) or not isinstance(raw.get("value"), (int, float)) or raw["value"] <= 0:
        return None
    usd = prices.eth_usd if native == "ETH" else next(
        (s.native_usd for s in prices.scenarios if s.native == native and s.native_usd is not None), None)
    if usd is None:
        return None
    rate = Decimal(str(usd.value)) * Decimal(str(raw["value"]))
    return rate, (f"{native} at USD {usd.value} ({usd.as_of}), EUR {raw['value']} per USD "
                  f"({raw.get('as_of', '?')}): snapshots in {prices.path}, not live quotes")


def _print_estimate(est: dict, native: str, eur, as_json: bool) -> None:
    from decimal import Decimal

    from ..chain.fees import gwei
    if eur is not None:
        rate, how = eur
        est["eur_likely"] = str(round(Decimal(est["likely_wei"]) / 10**18 * rate, 6))
        est["eur_worst"] = str(round(Decimal(est["worst_wei"]) / 10**18 * rate, 6))
        est["eur_source"] = how
    est["native"] = native
    if as_json:
        typer.echo(json.dumps(est))
        return
    what = (f"entries {est['first_seq']}..{est['last_seq']} ({est['entries']} entries)" if est["entries"]
            else "nothing waits to be anchored; a batch would cost")
    fee = (f"base {gwei(est['base_fee_wei'])} + tip {gwei(est['tip_wei'])} gwei, max fee {gwei(est['max_fee_wei'])} gwei"
           if est["eip1559"] else f"gas price {gwei(est['max_fee_wei'])} gwei")
    cap = f" (maximum {gwei(est['cap_wei'])} gwei)" if est["cap_wei"] is not None else " (no maximum set)"
    say(f"next batch: {what}: {est['gas']:,} gas ({est['gas_source']})")
    say(f"fee per gas now on chain {est['chain_id']}: {fee}{cap}")
    line = f"cost: {_native(est['likely_wei'])} {native} likely, at most {_native(est['worst_wei'])} {native}"
    if eur is not None:
        line += f" = EUR {est['eur_likely']} likely, at most EUR {est['eur_worst']}"
    say(line)
    say(f"({est['eur_source']})" if eur is not None else
        "(no EUR price: add eur_per_usd {value, as_of, source} to ledger/costs/prices.json or give --prices FILE)")
    if est["postponed"]:
        say(f"anchoring would be {est['postponed']}")


def anchor(db: Db = None,
           chain: str = typer.Option(None, "--chain", envvar="AYNI_CHAIN_URL", help=CHAIN_HELP),
           contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP),
           keystore: Path = typer.Option(None, envvar="AYNI_ANCHOR_KEYSTORE", help=KEYSTORE_HELP),
           password_file: Path = typer.Option(None, help=PASSWORD_HELP),
           max_batch: int = typer.Option(1000, min=1, max=2**20, help="Entries per batch at most (up to 2**20: verifiers treat a larger batch as hostile)"),
           confirmations: int = typer.Option(None, min=1, help="Blocks before a batch counts as confirmed "
                                             "(default: the chain preset's, else 1)"),
           watch: bool = typer.Option(False, help="Keep anchoring every --interval seconds (Ctrl-C stops)"),
           interval: float = typer.Option(30.0, min=0.1, help="Seconds between rounds with --watch"),
           min_entries: int = typer.Option(1, min=1, help="With --watch, anchor once this many entries wait"),
           chain_preset: str = typer.Option(None, envvar="AYNI_CHAIN_PRESET", help=PRESET_HELP),
           max_fee_gwei: str = typer.Option(None, envvar="AYNI_MAX_FEE_GWEI", help=MAX_FEE_HELP),
           priority_fee_gwei: str = typer.Option(None, envvar="AYNI_PRIORITY_FEE_GWEI",
                                                 help="Tip per gas in gwei (default: the node's suggestion)"),
           replace_after: float = typer.Option(None, min=0, envvar="AYNI_REPLACE_AFTER_S", help="Seconds before a transaction still not mined is "
                                               "replaced (same nonce, fees +10% or more; default 180; 0: never)"),
           max_replacements: int = typer.Option(None, min=0, envvar="AYNI_MAX_REPLACEMENTS", help="Replacements per batch at most (default 5)"),
           recheck_blocks: int = typer.Option(None, min=0, envvar="AYNI_RECHECK_BLOCKS", help="Re-check confirmed batches this many blocks deep "
                                              "for reorgs (default: the preset's, else 64; 0: never)"),
           anchor_deadline: int = typer.Option(None, "--anchor-deadline", min=0, envvar="AYNI_ANCHOR_DEADLINE", help="Seconds within which entries "
                                               "must be anchored (auditors' `--anchor-deadline`, default 86400): "
                                               "a warning once half of it has passed while anchoring is postponed"),
           warn_batches: int = typer.Option(None, min=0, envvar="AYNI_WARN_BATCHES", help="Warn when the anchoring key pays for fewer anchors "
                                            "than this at the current fee (default 100; 0: never)"),
           estimate: bool = typer.Option(False, "--estimate", help="Print what the next batch would cost now "
                                         "and exit; sends nothing and needs no key"),
           prices: Path = typer.Option(None, help="With --estimate: price file for the EUR figure "
                                       "(default ledger/costs/prices.json)"),
           as_json: AsJson = False) -> None:
    """Anchor every entry not yet anchored, in batches of at most --max-batch."""
    from ..anchoring import Anchoring
    from ..chain import ChainError
    ledger = open_ledger(db)
    c = connect_chain(chain, keystore if not estimate else None, password_file, contract, need_key=not estimate)
    settings, preset = anchor_settings(c, chain_preset=chain_preset, max_fee_gwei=max_fee_gwei,
                                       priority_fee_gwei=priority_fee_gwei, confirmations=confirmations,
                                       recheck_blocks=recheck_blocks, replace_after=replace_after,
                                       max_replacements=max_replacements, deadline=anchor_deadline,
                                       warn_batches=warn_batches)
    job = Anchoring(ledger, c, max_batch=max_batch, **settings)
    if estimate:
        from ..chain import presets as P
        native = (preset or P.for_chain_id(c.chain_id) or P.get("hardhat")).native
        try:
            est = job.estimate()
        except ChainError as exc:
            fail(f"{exc.code}: {exc}")
        _print_estimate(est, native, eur_per_native(native, prices), as_json)
        return
    if not watch:
        try:
            report = job.run()
        except ChainError as exc:
            fail(f"{exc.code}: {exc}")
        _print_anchor_report(report, as_json)
        raise typer.Exit(0 if not (report.pending or report.postponed) else 3)
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
