"""`ayni-wallet privacy show|grant|revoke|export|import|log`: the member's data-sharing
preferences and the log of who read their data (docs/privacy.md). Signs in with the
member's key; every route here is the member's own, so no purpose is sent."""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import typer

from ledger.core.addresses import normalize_address
from ledger.core.text import visible

from ledger.files import write_atomic

from .client import open_client
from .config import API_OPT, JSON_OPT, KEY_OPT, PASSWORD_FILE_OPT, WalletError, handled, load_config

_DURATION = re.compile(r"([0-9]{1,6})([hdw])", re.ASCII)


def _client(api, key, password_file):
    return open_client(load_config(api_url=api, keystore=key, password_file=password_file))


def _until(value: str) -> str:
    """`30d`, `12h`, `2w` from now, or an ISO 8601 time (passed through for the server to check)."""
    m = _DURATION.fullmatch(value.strip())
    if m:
        seconds = int(m.group(1)) * {"h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))
    return value.strip()


def _who(grant: dict) -> str:
    (kind, value), = grant["grantee"].items()
    return visible(f"{kind} {value}")  # an organisation's name is someone's text


@handled
def show(api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
         as_json: bool = JSON_OPT) -> None:
    """Your grants: who may read which category of your data, for which purpose, until when."""
    with _client(api, key, password_file) as c:
        doc = c.get(f"/v1/accounts/{c.address}/preferences")
    if as_json:
        typer.echo(json.dumps(doc))
        return
    if not doc["grants"]:
        typer.echo("no grants: only you, and the essential purposes of the data policy, see your data")
    for g in doc["grants"]:
        typer.echo(visible(f"{g['id']}  ") + _who(g) +
                   visible(f" may read {g['category']} for {g['purpose']} until {g['until']}"))


@handled
def grant(category: str = typer.Option(..., "--category", help="A category of the data policy, e.g. memos"),
          purpose: str = typer.Option(..., "--purpose", help="A grantable purpose, e.g. care_coordination"),
          until: str = typer.Option(..., "--until", help="30d, 12h, 2w from now, or 2027-06-30T00:00:00Z"),
          to_account: str = typer.Option(None, "--to-account", help="An account (address)"),
          to_role: str = typer.Option(None, "--to-role", help="member, shop or treasurer"),
          to_org: str = typer.Option(None, "--to-org", help="A named organisation"),
          api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
          as_json: bool = JSON_OPT) -> None:
    """Let someone read a category of your data for one purpose, until a date."""
    given = [(k, v) for k, v in (("account", to_account), ("role", to_role), ("organisation", to_org)) if v]
    if len(given) != 1:
        raise WalletError("give exactly one of --to-account, --to-role, --to-org", "invalid_input")
    kind, value = given[0]
    if kind == "account":
        value = normalize_address(value, what="--to-account")
    body = {"grantee": {kind: value}, "category": category, "purpose": purpose, "until": _until(until)}
    with _client(api, key, password_file) as c:
        g = c.post(f"/v1/accounts/{c.address}/grants", body)
    typer.echo(json.dumps(g) if as_json else
               visible(f"granted {g['id']}: ") + _who(g) +
               visible(f" may read your {g['category']} for {g['purpose']} until {g['until']}"))


@handled
def revoke(grant_id: str = typer.Argument(..., help="The grant's id (privacy show)"),
           api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT) -> None:
    """Withdraw a grant at once."""
    with _client(api, key, password_file) as c:
        c.request("DELETE", f"/v1/accounts/{c.address}/grants/{grant_id}")
    typer.echo(f"revoked {grant_id}")


@handled
def export_(out: str = typer.Argument(..., help="File to write (- for standard output)"),
            api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT) -> None:
    """Write your preference document (docs/preferences.schema.json) to take elsewhere."""
    with _client(api, key, password_file) as c:
        doc = c.get(f"/v1/accounts/{c.address}/preferences")
    text = json.dumps(doc, indent=2)
    if out == "-":
        typer.echo(text)
        return
    write_atomic(out, text + "\n", mode=0o600)  # who may see your data: yours alone
    typer.echo(f"{len(doc['grants'])} grants written to {out}")


@handled
def import_(file: str = typer.Argument(..., help="A preference document (- for standard input)"),
            api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
            as_json: bool = JSON_OPT) -> None:
    """Replace your grants here with those of a preference document."""
    raw = sys.stdin.read() if file == "-" else Path(file).read_text()
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise WalletError(f"{file} is not JSON: {exc}", "invalid_input") from None
    with _client(api, key, password_file) as c:
        result = c.request("PUT", f"/v1/accounts/{c.address}/preferences", json=doc)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"imported {result['imported']} grants")
    for s in result["skipped"]:
        typer.echo(visible(f"skipped grant {s['index']}: {s['reason']}"))
    for w in result.get("warnings", []):
        typer.echo(visible(f"warning, grant {w['index']}: {w['reason']}"))


@handled
def log(limit: int = typer.Option(100, min=1, max=500, help="Rows per page"),
        after: int = typer.Option(0, min=0, help="Continue after this row id"),
        all_pages: bool = typer.Option(False, "--all", help="Follow every page"),
        api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
        as_json: bool = JSON_OPT) -> None:
    """Who read your data: who, their role, what, for which purpose, on which basis, when."""
    items, nxt = [], None
    with _client(api, key, password_file) as c:
        while True:
            page = c.get(f"/v1/accounts/{c.address}/access-log", {"after": after, "limit": limit})
            items += page["items"]
            nxt = page.get("nextAfter")
            if not (all_pages and nxt):
                break
            after = nxt
    if as_json:
        typer.echo(json.dumps({"items": items, "nextAfter": nxt}))
        return
    if not items:
        typer.echo("nobody else has read your data")
    for r in items:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["at"] / 1000))
        typer.echo(visible(f"{r['id']:>6}  {when}Z  {r['accessorRole']} {r['accessor']} read "
                           f"{'+'.join(r['categories'])} of {r['subject']} for {r['purpose']} "
                           f"({r['basis']}) via {r['resource']}"))
    if nxt:
        typer.echo(f"more: --after {nxt}")
