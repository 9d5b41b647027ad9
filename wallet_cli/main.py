"""`ayni-wallet`: member and treasurer CLI.

Every command is a module-level function registered here, by name, in one list: a command
module that fails to import stops the CLI with its error instead of silently dropping its
commands (tests/test_wallet_cli.py checks the full list `ayni-wallet --help` shows)."""
from __future__ import annotations

import typer

from . import admin, export, keys, listings, member, privacy, reconcile, reconcile_peer, verify
from . import shop  # docs/shops.md

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Ayni wallet: member keys, payments, and independent reconciliation for treasurers.")

COMMANDS = [
    # keys (wallet_cli/keys.py)
    ("new", keys.new), ("import", keys.import_), ("address", keys.address), ("list", keys.list_),
    # a member's own account (wallet_cli/member.py)
    ("balance", member.balance), ("pay", member.pay), ("request", member.request_),
    ("requests", member.requests_), ("approve", member.approve), ("decline", member.decline),
    ("history", member.history), ("receipt", member.receipt),
    # treasurer actions (wallet_cli/admin.py)
    ("open-account", admin.open_account), ("set-limit", admin.set_limit), ("freeze", admin.freeze),
    ("unfreeze", admin.unfreeze), ("close", admin.close),
    # independent checks and books
    ("verify", verify.verify), ("reconcile", reconcile.reconcile_cmd), ("export", export.export_cmd),
    ("reconcile-peer", reconcile_peer.reconcile_peer),
    # a shop's till, books and refunds (wallet_cli/shop.py)
    ("takings", shop.takings), ("refund", shop.refund),
]
PRIVACY_COMMANDS = [("show", privacy.show), ("grant", privacy.grant), ("revoke", privacy.revoke),
                    ("export", privacy.export_), ("import", privacy.import_), ("log", privacy.log)]


@app.callback()
def _root() -> None:
    """Ayni wallet: member keys, payments, and independent reconciliation for treasurers."""


for _name, _fn in COMMANDS:
    app.command(_name)(_fn)
_privacy = typer.Typer(no_args_is_help=True, help="Who may see your data, and who did.")
for _name, _fn in PRIVACY_COMMANDS:
    _privacy.command(_name)(_fn)
app.add_typer(_privacy, name="privacy")
_listings = typer.Typer(no_args_is_help=True, help="The exchange board: offers, needs, arrangements (no ranking).")
for _name, _fn in listings.COMMANDS:
    _listings.command(_name)(_fn)
app.add_typer(_listings, name="listings")
_shop = typer.Typer(no_args_is_help=True, help="Your shop: its public profile (docs/shops.md).")
_shop_profile = typer.Typer(no_args_is_help=True, help="The profile customers see: set, show, unpublish, erase.")
for _name, _fn in shop.PROFILE_COMMANDS:
    _shop_profile.command(_name)(_fn)
_shop.add_typer(_shop_profile, name="profile")
app.add_typer(_shop, name="shop")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
