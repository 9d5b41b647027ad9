"""`ayni-wallet reconcile-peer`: a treasurer's (or auditor's) check of the two sides of an alliance.

Reads this community's log over HTTP (signed in, as `reconcile --api`) or from an export, and
the allied community's log over HTTP with a key of THAT community (`--peer-key`: each node
shows its whole log only to its own treasurers and auditors) or from its export (`--peer-log`,
written by `ayni export-log` over there). The checks are the pure ledger/core/peer_reconcile.py."""
from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from ledger.core import log_format
from ledger.core.peer_reconcile import CHECKS, NodeLog, PeerReport, reconcile_peers
from ledger.core.text import visible

from .config import API_OPT, JSON_OPT, KEY_OPT, PASSWORD_FILE_OPT, WalletError, fail
from .reconcile import ReconcileInputError

CHECK_TITLES = {
    "log": "each log verifies alone",
    "alliance": "both logs record the same alliance",
    "alliance_signer": "each side's terms signed by a treasurer of the other",
    "remote_leg": "every committed leg has its committed twin, same transfer",
    "split_decision": "nothing committed on one side and aborted on the other",
    "peer_mirror": "the peer accounts mirror each other",
    "pending": "nothing prepared longer than the timeout",
}


def read_export(path: Path, name: str) -> NodeLog:
    try:
        f = open(path, encoding="ascii", newline="\n")
    except OSError as exc:
        raise ReconcileInputError(f"cannot read {path}: {exc.strerror}") from None
    with f:
        try:
            reader = log_format.ExportReader(f, name=str(path))
            entries = list(reader.entries())
        except log_format.ExportInvalid as exc:
            raise ReconcileInputError(str(exc)) from None
        except UnicodeDecodeError:
            raise ReconcileInputError(f"{path} holds non-ASCII bytes: not an export") from None
    end = reader.end if isinstance(reader.end, dict) else {}
    head = end.get("headSeq")
    return NodeLog(name, entries, head if type(head) is int else None,
                   end.get("balances") if isinstance(end.get("balances"), list) else None)


def read_http(client, name: str, page: int = 1000) -> NodeLog:
    """The balance sheet first (it fixes the head), then the log up to that head."""
    sheet = client.get("/v1/balances")
    if not isinstance(sheet, dict) or type(sheet.get("headSeq")) is not int:
        raise ReconcileInputError(f"the {name} node's balance sheet is not {{headSeq, balances}}")
    head, entries, after = sheet["headSeq"], [], 0
    while after < head:
        data = client.get("/v1/log", params={"after": after, "limit": page})
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise ReconcileInputError(f"the {name} node's log page is not {{entries: [...]}}")
        rows = [e for e in data["entries"] if isinstance(e, dict) and type(e.get("seq")) is int and e["seq"] <= head]
        if not rows or rows[-1]["seq"] <= after:
            break
        entries += rows
        after = rows[-1]["seq"]
    return NodeLog(name, entries, head, sheet.get("balances") if isinstance(sheet.get("balances"), list) else None)


def _read_side(name: str, log: Path | None, api: str | None, key: str | None, password_file: Path | None) -> NodeLog:
    if log is not None:
        return read_export(log, name)
    from .client import open_ledger_reader
    from .config import load_config
    cfg = load_config(api_url=api, keystore=key, password_file=password_file)
    client = open_ledger_reader(cfg)
    try:
        return read_http(client, name)
    finally:
        client.close()


def render(report: PeerReport) -> None:
    counts = report.counts()
    for check in CHECKS:
        n = counts[check]
        typer.echo(f"{'ok ' if n == 0 else 'BAD'} {CHECK_TITLES[check]}" + (f": {n} found" if n else ""))
    typer.echo(f"payments checked {report.payments_checked}, in flight {report.in_flight}; "
               + "; ".join(f"{name} log {r.entries} entries" for name, r in report.logs.items()))
    for d in report.discrepancies:  # what the servers said: never a terminal control
        typer.echo(visible(str(d)))
    for w in report.warnings:
        typer.echo(f"WARNING: {visible(w)}")
    typer.echo("RECONCILED: both sides agree" if report.ok else "DISCREPANCIES FOUND")


def reconcile_peer(
    log: Path = typer.Option(None, "--log", help="This community's export (`ayni export-log`) instead of the API"),
    api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
    peer_api: str = typer.Option(None, "--peer-api", help="The allied node's API base URL (with --peer-key)"),
    peer_key: str = typer.Option(None, "--peer-key", help="A treasurer's or auditor's key of the ALLIED community"),
    peer_password_file: Path = typer.Option(None, "--peer-password-file", help="Passphrase file of --peer-key"),
    peer_log: Path = typer.Option(None, "--peer-log", help="The allied community's export (`ayni export-log`)"),
    timeout: int = typer.Option(600, "--pending-timeout", min=1,
                                help="Seconds a leg may stay prepared (the nodes' federation timeout and more)"),
    no_signatures: bool = typer.Option(False, "--no-signatures", help="Skip signature recovery in the logs"),
    as_json: bool = JSON_OPT,
) -> None:
    """Check both sides of an alliance: each log alone, the matching legs, the mirrored peer accounts.

    Exit 0 when both sides agree; 1 when a discrepancy is found; 2 when a log cannot be read;
    3 on an unexpected fault (a bug)."""
    if peer_log is None and (peer_api is None or peer_key is None):
        fail("give the allied community's log: --peer-log FILE, or --peer-api URL with --peer-key", 2)
    if peer_log is not None and (peer_api or peer_key):
        fail("give --peer-log or --peer-api/--peer-key, not both", 2)
    try:
        own = _read_side("own", log, api, key, password_file)
        peer = _read_side("peer", peer_log, peer_api, peer_key, peer_password_file)
        report = reconcile_peers(own, peer, now_ms=int(time.time() * 1000), timeout_ms=timeout * 1000,
                                 verify_signatures=not no_signatures)
    except ReconcileInputError as exc:
        fail(str(exc), 2)
    except WalletError as exc:
        fail(str(exc), 2)
    except KeyboardInterrupt:
        fail("interrupted: nothing was concluded", 130)
    except Exception as exc:  # noqa: BLE001 - never a traceback: one line, a distinct exit code
        fail(f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
             "(a bug in the wallet: please report it)", 3)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=1))
    else:
        render(report)
    raise typer.Exit(0 if report.ok else 1)
