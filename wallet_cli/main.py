"""`ayni-wallet`: member and treasurer CLI. Key management, payments and
reconciliation arrive with the wallet issue; receipt verification works now."""
from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Ayni wallet: member keys, payments, and independent reconciliation for treasurers.")


@app.callback()
def _root() -> None:
    """Ayni wallet: member keys, payments, and independent reconciliation for treasurers."""


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def verify(receipt: Path = typer.Argument(..., help="Receipt JSON written by `ayni receipt`"),
           chain: str = typer.Option(None, "--chain", envvar="AYNI_CHAIN_URL",
                                     help="JSON-RPC URL of any node of the receipt's chain"),
           contract: str = typer.Option(None, help="Anchor contract to check against (default: the receipt's)"),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output")) -> None:
    """Check a receipt against the chain: entry -> hash -> Merkle proof -> anchored root.

    Uses only ledger.core and the chain node; the cooperative's server is not asked."""
    from ledger.chain import AnchorChain, ChainError
    from ledger.core.receipts import ReceiptInvalid
    from ledger.core.receipts import verify_receipt
    try:
        doc = json.loads(receipt.read_text())
    except OSError as exc:
        _fail(f"cannot read {receipt}: {exc.strerror}")
    except ValueError as exc:
        _fail(f"{receipt} is not JSON: {exc}")
    if not chain:
        from .config import load_config
        chain = load_config().chain_url
    if not chain:
        _fail("give --chain URL (or AYNI_CHAIN_URL): a node of the chain the receipt names")
    try:
        target = contract or (doc.get("contract") if isinstance(doc, dict) else None)
        if not target:
            _fail("the receipt names no contract; give --contract")
        node = AnchorChain.connect(chain, contract_address=target)
        problems = verify_receipt(doc, node)
    except ReceiptInvalid as exc:
        problems = [f"receipt is invalid: {exc}"]
    except ChainError as exc:
        _fail(f"{exc.code}: {exc}")
    if contract and isinstance(doc, dict) and str(doc.get("contract", "")).lower() != contract.lower():
        problems = problems or [f"the receipt names contract {doc.get('contract')}, not {contract}"]
    ok = not problems
    if as_json:
        typer.echo(json.dumps({"ok": ok, "problems": problems,
                               "seq": doc.get("values", [None])[0] if isinstance(doc, dict) else None}))
    elif ok:
        b = doc["batch"]
        typer.echo(f"OK: entry {doc['values'][0]} is in batch {b['firstSeq']}..{b['lastSeq']} anchored in "
                   f"{doc['contract']} on chain {doc['chainId']} (tx {doc['txHash']})")
    else:
        for p in problems:
            typer.echo(f"FAILED: {p}", err=True)
    raise typer.Exit(0 if ok else 1)


# Command groups in their own modules (keys, member, treasurer, reconcile, export, privacy).
def _register_commands() -> None:
    import importlib
    for name in ("keys", "member", "admin", "reconcile", "export", "privacy"):
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        module.register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
