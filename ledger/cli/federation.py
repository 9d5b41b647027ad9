"""`ayni federation ...`: this node's key, alliances with other communities, remote payments in
flight (docs/federation.md).

Treasurer actions are EIP-712 messages signed here, from the treasurer's keystore, and posted to
this community's node (--node): the signature is the authorisation, the node forwards what the
peer must see. `status` reads the database directly (in-flight payments name members, so they
are not published over HTTP).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer

from .options import AsJson, Db, fail, open_ledger

NODE_HELP = "Base URL of this community's `ayni serve` (default: $AYNI_NODE_API or http://127.0.0.1:8000)"
TREASURER_KEYSTORE_HELP = "Encrypted V3 keystore of a treasurer of this community"
TREASURER_PASSWORD_HELP = "File holding that keystore's passphrase (else $AYNI_TREASURER_PASSWORD, else a prompt)"
NODE_PASSWORD_HELP = "File holding the node keystore passphrase (else $AYNI_NODE_PASSWORD, else a prompt)"
PAIR_HELP = ("A currency that crosses, HERE:THERE:UNITS_HERE:UNITS_THERE:LIMIT_HERE:LIMIT_THERE, e.g. "
             "HOUR:HOUR:1:1:600:600 (LIMIT_HERE: how far our peer account for them may go below zero)")


def _secret(path: Path | None, env: str, what: str, *, confirm: bool = False) -> str:
    if path is not None:
        try:
            return path.read_text().rstrip("\n")
        except OSError as exc:
            fail(f"cannot read password file {path}: {exc.strerror}")
    if os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        fail(f"no passphrase for the {what}: give --password-file or set {env}")
    return typer.prompt(f"{what} passphrase", hide_input=True, confirmation_prompt=confirm)


def _key(keystore: Path, password_file: Path | None, env: str, what: str) -> bytes:
    from ..chain.keys import load_keystore
    return load_keystore(str(keystore), _secret(password_file, env, what))


# --- the node key and the driver of `ayni serve` -----------------------------------------------

def federation_new_key(keystore: Path = typer.Option(..., help="Where to write the encrypted node keystore"),
                       password_file: Path = typer.Option(None, help=NODE_PASSWORD_HELP)) -> None:
    """Create this node's federation key (signs node-to-node messages) as an encrypted V3
    keystore; prints its address only. Give it to `ayni serve --node-keystore`."""
    from ..chain.keys import write_keystore
    from ..core.typed_data import address_of_key
    from ..signing import new_key
    if keystore.exists():
        fail(f"{keystore} exists; refusing to overwrite a key")
    key = new_key()
    write_keystore(str(keystore), key, _secret(password_file, "AYNI_NODE_PASSWORD", "node keystore", confirm=True))
    typer.echo(address_of_key(key))


def start_driver(ledger, keystore: Path, password_file: Path | None, node_url: str, *,
                 timeout_ms: int, retry_ms: int):
    """For `ayni serve`: check the node key now (a wrong passphrase fails before serving), hand
    the workers what they need to open it, and start the one driver of this server in this
    (parent) process, so several workers never drive twice."""
    from ..federation import runtime
    from ..federation.driver import Driver, driver_lock
    password = _secret(password_file, runtime.ENV_PASSWORD, "node keystore")
    key = runtime.load_node_key(keystore, password)
    os.environ[runtime.ENV_KEYSTORE] = str(keystore.expanduser().resolve())
    if password_file is not None:
        os.environ[runtime.ENV_PASSWORD_FILE] = str(password_file.expanduser().resolve())
    else:
        os.environ[runtime.ENV_PASSWORD] = password  # the workers are this process's children
    os.environ.update({runtime.ENV_PUBLIC_URL: node_url, runtime.ENV_TIMEOUT_MS: str(timeout_ms),
                       runtime.ENV_RETRY_MS: str(retry_ms)})
    fed = runtime.open_federation(ledger, key, node_url, timeout_ms=timeout_ms, retry_ms=retry_ms)
    return Driver(fed.node, fed.transport, retry_s=retry_ms / 1000, lock=driver_lock(ledger.engine)).start()


# --- talking to this community's node ----------------------------------------------------------

def _node_url(node: str | None) -> str:
    return (node or os.environ.get("AYNI_NODE_API") or "http://127.0.0.1:8000").rstrip("/")


def _call(method: str, url: str, body: dict | None = None) -> dict:
    import httpx
    try:
        r = httpx.request(method, url, json=body, timeout=15.0)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {type(exc).__name__}: {exc}")
    try:
        data = r.json()
    except ValueError:
        fail(f"{url}: HTTP {r.status_code}, not JSON")
    if r.status_code >= 400:
        err = data.get("error", {}) if isinstance(data, dict) else {}
        fail(f"{err.get('code', r.status_code)}: {err.get('message', r.text[:200])}")
    return data


def _domain(identity: dict):
    from ..core.codec import parse_b32
    from ..core.typed_data import Domain
    return Domain(chain_id=int(identity["chainId"]), salt=parse_b32(identity["community"], "community"))


def _parse_pair(text: str) -> dict:
    parts = text.split(":")
    if len(parts) != 6 or not all(p.isdigit() for p in parts[2:]):
        fail(f"--pair {text!r}: expected HERE:THERE:UNITS_HERE:UNITS_THERE:LIMIT_HERE:LIMIT_THERE")
    return {"currencyA": parts[0], "currencyB": parts[1], "unitsA": int(parts[2]), "unitsB": int(parts[3]),
            "limitA": int(parts[4]), "limitB": int(parts[5])}


def _show(data: dict, as_json: bool, line: str) -> None:
    typer.echo(json.dumps(data) if as_json else line)


def federation_propose(peer: str = typer.Option(..., help="Base URL of the other community's node"),
                       pair: list[str] = typer.Option(..., help=PAIR_HELP),
                       keystore: Path = typer.Option(..., envvar="AYNI_TREASURER_KEYSTORE",
                                                     help=TREASURER_KEYSTORE_HELP),
                       password_file: Path = typer.Option(None, help=TREASURER_PASSWORD_HELP),
                       node: str = typer.Option(None, help=NODE_HELP),
                       valid_for: int = typer.Option(7 * 86_400, min=60, help="Seconds the signature may be "
                                                     "recorded in (the other treasurer accepts within it)"),
                       as_json: AsJson = False) -> None:
    """Propose an alliance: this community is side A, the peer's node side B. The peer's
    treasurer then runs `ayni federation accept ALLIANCE_ID` against their node."""
    from ..core.federation import Alliance
    from ..core.typed_data import sign_digest
    pairs = [_parse_pair(p) for p in pair]  # a typo fails before anything is asked or signed
    own, other = _call("GET", _node_url(node) + "/v1/federation/node"), _call("GET", peer.rstrip("/") + "/v1/federation/node")
    alliance = Alliance.create(community_a=own["community"], chain_id_a=own["chainId"], node_a=own["node"],
                               url_a=own["url"], community_b=other["community"], chain_id_b=other["chainId"],
                               node_b=other["node"], url_b=other["url"], pairs=pairs,
                               nonce=time.time_ns(), valid_until=int(time.time()) + valid_for)
    key = _key(keystore, password_file, "AYNI_TREASURER_PASSWORD", "treasurer keystore")
    signature = sign_digest(key, _domain(own).digest(alliance.struct_hash()))
    out = _call("POST", _node_url(node) + "/v1/federation/alliances",
                {"terms": alliance.message(), "signature": signature})
    note = "" if out.get("delivered", True) else f" (not yet delivered to the peer: {out.get('deliveryError')})"
    _show(out, as_json, f"proposed alliance {out['allianceId']}{note}")


def federation_accept(alliance_id: str = typer.Argument(..., help="The proposed alliance's id"),
                      keystore: Path = typer.Option(..., envvar="AYNI_TREASURER_KEYSTORE",
                                                    help=TREASURER_KEYSTORE_HELP),
                      password_file: Path = typer.Option(None, help=TREASURER_PASSWORD_HELP),
                      node: str = typer.Option(None, help=NODE_HELP), as_json: AsJson = False) -> None:
    """Accept a proposal this node received: sign the same terms, record the alliance here and
    tell the proposer's node."""
    from ..core.codec import hex0x, parse_b32
    from ..core.errors import LedgerError
    from ..core.federation import Alliance
    from ..core.typed_data import sign_digest
    base = _node_url(node)
    try:
        parse_b32(alliance_id, "allianceId")
    except LedgerError as exc:
        fail(f"{exc.code}: {exc.message}")
    found = _call("GET", f"{base}/v1/federation/alliances/proposals/{alliance_id}")
    if not isinstance(found.get("terms"), dict):
        fail(f"unknown_alliance: no proposal {alliance_id} on {base}")
    alliance = Alliance.from_message(found["terms"])
    side = found.get("side")
    # what the treasurer is about to trust: confirm it with the other community out of band
    # (docs/federation.md, "Before accepting"): a look-alike proposal names a real community id
    # with an attacker's node key and URL
    typer.echo(f"accepting: community {hex0x(alliance.community(side))} whose node {alliance.node(side)} "
               f"at {alliance.url_a if side == 'A' else alliance.url_b} will be trusted", err=True)
    own = _call("GET", base + "/v1/federation/node")
    key = _key(keystore, password_file, "AYNI_TREASURER_PASSWORD", "treasurer keystore")
    signature = sign_digest(key, _domain(own).digest(alliance.struct_hash()))
    out = _call("POST", f"{base}/v1/federation/alliances/{alliance_id}/accept", {"signature": signature})
    note = "" if out.get("delivered", True) else f" (the proposer is not yet told: {out.get('deliveryError')})"
    _show(out, as_json, f"alliance {alliance_id} recorded{note}")


def _set_status(status: str, alliance_id: str, keystore: Path, password_file: Path | None, node: str | None,
                as_json: bool) -> None:
    from ..core.federation import AllianceStatus
    from ..core.typed_data import sign_digest
    base = _node_url(node)
    message = AllianceStatus.create(alliance_id=alliance_id, status=status, nonce=time.time_ns(),
                                    valid_until=int(time.time()) + 3600)
    own = _call("GET", base + "/v1/federation/node")
    key = _key(keystore, password_file, "AYNI_TREASURER_PASSWORD", "treasurer keystore")
    signature = sign_digest(key, _domain(own).digest(message.struct_hash()))
    out = _call("POST", f"{base}/v1/federation/alliances/{alliance_id}/status",
                {"message": message.message(), "signature": signature})
    _show(out, as_json, f"alliance {alliance_id}: {status}")


_ID = typer.Argument(..., help="The alliance's id")
_KS = typer.Option(..., envvar="AYNI_TREASURER_KEYSTORE", help=TREASURER_KEYSTORE_HELP)
_PW = typer.Option(None, help=TREASURER_PASSWORD_HELP)
_NODE = typer.Option(None, help=NODE_HELP)


def federation_suspend(alliance_id: str = _ID, keystore: Path = _KS, password_file: Path = _PW,
                       node: str = _NODE, as_json: AsJson = False) -> None:
    """Suspend an alliance: no new payment either way; payments in flight still complete or abort."""
    _set_status("suspended", alliance_id, keystore, password_file, node, as_json)


def federation_resume(alliance_id: str = _ID, keystore: Path = _KS, password_file: Path = _PW,
                      node: str = _NODE, as_json: AsJson = False) -> None:
    """Make a suspended alliance active again."""
    _set_status("active", alliance_id, keystore, password_file, node, as_json)


def federation_end(alliance_id: str = _ID, keystore: Path = _KS, password_file: Path = _PW,
                   node: str = _NODE, as_json: AsJson = False) -> None:
    """End an alliance for good (final)."""
    _set_status("ended", alliance_id, keystore, password_file, node, as_json)


def federation_alliances(node: str = _NODE, as_json: AsJson = False) -> None:
    """Alliances and pending proposals of this node (public terms)."""
    items = _call("GET", _node_url(node) + "/v1/federation/alliances")["items"]
    if as_json:
        typer.echo(json.dumps(items))
        return
    if not items:
        typer.echo("no alliances")
    for a in items:
        typer.echo(f"{a.get('allianceId')}  {a.get('status')}  peer {a.get('peerCommunity')} at "
                   f"{a.get('peerUrl')}  pairs {json.dumps(a.get('pairs'))}")


def federation_status(db: Db = None, as_json: AsJson = False) -> None:
    """Remote payments not yet decided on this node (both sides), read from the database."""
    from ..federation.node import FederationNode
    pending = FederationNode(open_ledger(db), None).pending()
    if as_json:
        typer.echo(json.dumps(pending))
        return
    if not pending:
        typer.echo("no remote payment in flight")
    for p in pending:
        typer.echo(f"{p.get('paymentId')}  {p.get('side')}  {p.get('state')}  {p.get('amount')} "
                   f"{p.get('currency', '')} -> {p.get('delivered')} {p.get('payeeCurrency', '')}")
