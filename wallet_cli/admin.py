"""Treasurer commands: open-account, set-limit, freeze, unfreeze, close.

Each is an EIP-712 action signed here with the treasurer's keystore and posted to
POST /v1/admin/actions; the server accepts it only if the signer is an active treasurer.
"""
from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import typer

from ledger.core.text import visible
from ledger.core.typed_data import OpenAccount, SetLimit, SetStatus, sign_action
from ledger.core.vocab import Role, Status

from .client import open_client
from .config import API_OPT, JSON_OPT, KEY_OPT, PASSWORD_FILE_OPT, handled, load_config, note
from .member import DEFAULT_VALIDITY_S, post_signed


def _submit(api, key, password_file, as_json: bool, build, describe) -> None:
    """Sign the action `build(community)` returns and post it (resending the same signed
    payload after a lost connection); `describe(community, action)` says what was done."""
    cfg = load_config(api_url=api, keystore=key, password_file=password_file)
    with open_client(cfg) as c:
        community = c.community(pin_chain_id=cfg.chain_id, pin_salt=cfg.community_salt)
        action = build(community)
        message = {k: (str(v) if k in ("nonce", "validUntil") else v) for k, v in action.message().items()}
        body = {"type": action.PRIMARY, "message": message,
                "signature": sign_action(c.key, community.domain, action)}
        posted = post_signed(c, body, path="/v1/admin/actions", note=note)
    if as_json:
        typer.echo(json.dumps({**posted, "action": body["type"], "message": message}))
    else:
        again = " (already recorded: a resend)" if posted.get("duplicate") else ""
        typer.echo(visible(f"{describe(community, action)}: entry {posted['seq']}{again}"))


def _common() -> dict:
    return {"nonce": secrets.randbits(128), "valid_until": int(time.time()) + DEFAULT_VALIDITY_S}


@handled
def open_account(account: str = typer.Argument(..., help="Address of the new member's key"),
                 role: str = typer.Option(Role.MEMBER.value, "--role", help="member | shop | treasurer | auditor"),
                 api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
                 as_json: bool = JSON_OPT) -> None:
    """Open an account (treasurer). Default limits come from the community's role defaults."""
    _submit(api, key, password_file, as_json,
            lambda _: OpenAccount.create(account=account, role=role, **_common()),
            lambda _, a: f"opened {a.role} account {a.account}")


@handled
def set_limit(account: str = typer.Argument(..., help="Address of the account"),
              currency: str = typer.Option(..., "--currency", "-c", help="Currency code"),
              limit: str = typer.Option(..., "--limit", help="How far below zero it may go: '10h', '100.00'"),
              ceiling: str = typer.Option(None, "--ceiling", help="Highest balance it may hold (default: none)"),
              api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
              as_json: bool = JSON_OPT) -> None:
    """Set an account's credit limit and ceiling in one currency (treasurer)."""
    def build(community):
        cur = community.currency(currency)
        return SetLimit.create(account=account, currency=cur.code, credit_limit=cur.parse(limit, allow_zero=True),
                               ceiling=None if ceiling is None else cur.parse(ceiling, allow_zero=True),
                               **_common())

    def describe(community, a):
        cur = community.currencies[a.currency]
        top = "no ceiling" if a.ceiling is None else f"ceiling {cur.format(a.ceiling)}"
        return f"{a.account}: {a.currency} credit limit {cur.format(a.credit_limit)}, {top}"
    _submit(api, key, password_file, as_json, build, describe)


def _set_status(account: str, status: str, verb: str, api, key, password_file, as_json: bool) -> None:
    _submit(api, key, password_file, as_json,
            lambda _: SetStatus.create(account=account, status=status, **_common()),
            lambda _, a: f"{verb} account {a.account}")


@handled
def freeze(account: str = typer.Argument(..., help="Address of the account"),
           api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
           as_json: bool = JSON_OPT) -> None:
    """Freeze an account (treasurer): it can neither pay nor be paid, nor sign in, until unfrozen."""
    _set_status(account, Status.FROZEN, "froze", api, key, password_file, as_json)


@handled
def unfreeze(account: str = typer.Argument(..., help="Address of the account"),
             api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
             as_json: bool = JSON_OPT) -> None:
    """Make a frozen account active again (treasurer)."""
    _set_status(account, Status.ACTIVE, "unfroze", api, key, password_file, as_json)


@handled
def close(account: str = typer.Argument(..., help="Address of the account"),
          api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
          as_json: bool = JSON_OPT) -> None:
    """Close an account for good (treasurer): it can neither pay, be paid nor sign in again.
    Closing is final (docs/ledger-model.md); its entries stay in the log."""
    _set_status(account, Status.CLOSED, "closed", api, key, password_file, as_json)
