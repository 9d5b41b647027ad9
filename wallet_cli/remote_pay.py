"""`ayni-wallet pay` to a member of an allied community (docs/federation.md, "Remote payment").

The payer signs ONE RemoteTransfer naming both amounts: what leaves their account here and
what the payee receives there. `delivered` is computed here from the alliance's pair as this
node publishes it (GET /v1/federation/alliances), rounded down exactly as the nodes check it
(ledger.core.federation.delivered_for), and shown before anything is signed, so no one pays at
a rate they did not see. The node answers 201 (committed here: the payee's node is bound to
credit it), 202 (prepared, decision pending: the payment id to poll) or the refusal's code."""
from __future__ import annotations

import json
import secrets
import time

import typer

from ledger.core.addresses import normalize_address
from ledger.core.codec import hex0x, parse_b32
from ledger.core.errors import LedgerError
from ledger.core.federation import (
    CurrencyPair,
    RemoteTransfer,
    delivered_for,
    payment_id,
)
from ledger.core.text import visible
from ledger.core.typed_data import memo_hash, sign_digest

from .config import WalletError


def split_payee(payee: str, community: str | None) -> tuple[bytes | None, str]:
    """`<community-id>:<address>` or `--community <id>` with a bare address; (None, address)
    when neither names a community."""
    if ":" in payee:
        named, payee = payee.split(":", 1)
        if community is not None and community.lower() != named.lower():
            raise WalletError(f"the payee names community {named} but --community says {community}", "invalid_input")
        community = named
    address = normalize_address(payee, what="payee")
    if community is None:
        return None, address
    try:
        return parse_b32(community, "community id"), address
    except (LedgerError, ValueError, TypeError):
        raise WalletError(f"{community!r} is not a community id (0x and 64 hex digits: the other community's "
                          "genesis hash, its EIP-712 salt)", "invalid_input") from None


def alliance_with(api, community: bytes) -> dict:
    """The alliance this node records with `community`, as GET /v1/federation/alliances shows it."""
    items = (api.get("/v1/federation/alliances", auth=False) or {}).get("items") or []
    wanted = hex0x(community).lower()
    found = [item for item in items if isinstance(item, dict) and item.get("status") != "proposed"
             and str(item.get("peerCommunity", "")).lower() == wanted]
    # after an ended alliance the communities may ally again: the one in force is the one not ended
    found.sort(key=lambda item: item.get("status") != "ended")
    if found:
        return found[-1]
    raise WalletError(f"unknown_alliance: this node records no alliance with community {hex0x(community)}",
                      "unknown_alliance")


def quote(alliance: dict, currency: str, amount: int) -> tuple[CurrencyPair, str, str, int]:
    """(pair, direction, payee currency, delivered) for paying `amount` of `currency` here."""
    direction = "AB" if alliance.get("side") == "A" else "BA"
    for raw in alliance.get("pairs") or []:
        pair = CurrencyPair.from_message(raw)
        here, there = pair.currencies(direction)
        if here == currency:
            delivered = delivered_for(amount, pair, direction)
            if delivered == 0:
                raise WalletError(f"rate_mismatch: {amount} minor units of {currency} are too small to deliver one "
                                  f"minor unit of {there}", "rate_mismatch")
            return pair, direction, there, delivered
    raise WalletError(f"unknown_currency: {currency} does not cross this alliance", "unknown_currency")


def pay_remote(c, community, cur, *, peer_community: bytes, payee: str, minor: int, memo: str | None,
               yes: bool, valid_for: int, as_json: bool, confirm) -> None:
    if peer_community == community.domain.salt:
        raise WalletError("that is this community: pay the address without a community", "invalid_input")
    alliance = alliance_with(c, peer_community)
    pair, direction, there, delivered = quote(alliance, cur.code, minor)
    units_here, units_there = (pair.units_a, pair.units_b) if direction == "AB" else (pair.units_b, pair.units_a)
    confirm(f"pay {cur.format(minor)} {cur.code} ({minor} minor units) from {c.address}\n"
            f"  to {payee} in community {hex0x(peer_community)} (alliance {visible(str(alliance.get('allianceId')))},"
            f" {visible(str(alliance.get('status')))})\n"
            f"  the payee receives {delivered} minor units of {there} (rate {units_here} {cur.code} : "
            f"{units_there} {there}, rounded down), memo: {visible(memo) or '(none)'}", yes, as_json)
    salt = secrets.token_bytes(32) if memo else None
    t = RemoteTransfer.create(payer=c.address, payee_community=peer_community, payee=payee, currency=cur.code,
                              amount=minor, payee_currency=there, delivered=delivered, nonce=secrets.randbits(128),
                              valid_until=int(time.time()) + valid_for, memo_hash=memo_hash(memo, salt))
    body = {"message": {**t.message(), "nonce": str(t.nonce), "validUntil": str(t.valid_until)},
            "signature": sign_digest(c.key, community.domain.digest(t.struct_hash()))}
    if memo:
        body.update(memo=memo, memoSalt=hex0x(salt))
    pid = hex0x(payment_id(community.domain, t))
    from .config import note
    from .member import post_signed
    try:
        answer = post_signed(c, body, note=note, path="/v1/remote-transfers")
    except WalletError as exc:
        raise WalletError(f"refused: {exc.message} (payment {pid}; nothing was paid)", exc.code) from None
    state = answer.get("state")
    if as_json:
        typer.echo(json.dumps({**answer, "paymentId": answer.get("paymentId", pid), "message": body["message"]}))
        return
    if state == "committed":
        typer.echo(f"paid {cur.format(minor)} {cur.code}; {payee} receives {delivered} minor units of {there}: "
                   f"committed, payment {pid}")
    else:
        typer.echo(f"pending: payment {pid} is prepared here ({cur.format(minor)} {cur.code} held) and awaits the "
                   f"payee's node; it commits or aborts on its own (GET /v1/remote-transfers/{pid})")
