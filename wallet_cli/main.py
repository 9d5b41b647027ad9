"""`ayni-wallet`: member and treasurer CLI. Commands arrive with the wallet issue;
for now it explains itself."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Ayni wallet: member keys, payments, and independent reconciliation for treasurers.")


@app.callback()
def _root() -> None:
    """Ayni wallet: member keys, payments, and independent reconciliation for treasurers."""


@app.command()
def about() -> None:
    """What this wallet will do and where it stands."""
    typer.echo("ayni-wallet: keys, pay, request, balance, history, receipt, verify, reconcile, export.\n"
               "Only this help exists in this release; the ledger itself is driven by `ayni`.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
