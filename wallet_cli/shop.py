"""Shop commands (docs/shops.md): the takings report, refunds signed with the shop's own key,
and the shop's public profile. Thin: the server keeps the rules, the wallet signs locally."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import typer

from ledger.core.text import visible

from .config import API_OPT, JSON_OPT, KEY_OPT, PASSWORD_FILE_OPT, WalletError, handled
from .member import _confirm, _fmt, _send_transfer, _session, _table, sign_transfer

COLUMNS = ("period", "till", "currency", "count", "sum", "refunds", "net")


def _csv(rows: list[dict]) -> str:
    """The report as CSV, amounts in minor units (as the API's JSON and CSV). A till label starting
    with = + - @ gets a leading ' so a spreadsheet shows it instead of running it."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        till = r["till"]
        if till and till[0] in "=+-@\t\r":
            till = "'" + till
        w.writerow([r["period"], till, r["currency"], r["count"], r["sum"], r["refunds"], r["net"]])
    return buf.getvalue()


@handled
def takings(from_: str = typer.Option(..., "--from", help="First UTC day, YYYY-MM-DD"),
            to: str = typer.Option(..., "--to", help="Last UTC day (inclusive), YYYY-MM-DD"),
            period: str = typer.Option("day", "--period", help="day | week | month"),
            till: str = typer.Option(None, "--till", help="Only this till label"),
            csv_file: Path = typer.Option(None, "--csv", help="Write the rows as CSV to this file ('-': stdout)"),
            api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
            as_json: bool = JSON_OPT) -> None:
    """Your shop's takings per period, till and currency: count, sum, refunds, net."""
    if period not in ("day", "week", "month"):
        raise WalletError("--period must be day, week or month", "invalid_input")
    cfg, c = _session(api, key, password_file)
    with c:
        rep = c.get(f"/v1/shops/{c.address}/takings", {"from": from_, "to": to, "period": period, "till": till})
        community = c.community()
    if csv_file is not None:
        text = _csv(rep["rows"])
        if str(csv_file) == "-":
            typer.echo(text, nl=False)
        else:
            csv_file.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {len(rep['rows'])} rows to {csv_file}", err=as_json)
        if not as_json:
            return
    if as_json:
        typer.echo(json.dumps(rep))
        return

    def money(cur, minor):
        return f"{_fmt(community, cur, minor)} {cur}"

    _table(f"takings {visible(from_)} .. {visible(to)} per {period}", ["period", "till", "count", "sum", "refunds", "net"],
           [[r["period"], r["till"], str(r["count"]), money(r["currency"], r["sum"]), money(r["currency"], r["refunds"]),
             money(r["currency"], r["net"])] for r in rep["rows"]])
    for t in rep["totals"]:
        typer.echo(f"total {t['currency']}: {t['count']} payments, {money(t['currency'], t['sum'])}, refunds "
                   f"{money(t['currency'], t['refunds'])}, net {money(t['currency'], t['net'])}")


def check_refund_intent(intent: dict, original: dict, seq: int, amount: int, me: str) -> None:
    """Refuse to sign a refund the server described wrongly: it goes from me back to the original's
    payer, in its currency, for the amount asked, and its refundId is recomputed here from the
    original's digest and the refund nonce (ledger.core.refunds.refund_id). A server that lied
    would otherwise get the shop's signature on a plain transfer to someone else."""
    from ledger.core.refunds import refund_id
    try:
        rid = "0x" + refund_id(bytes.fromhex(original["digest"][2:]), int(intent["refundNonce"])).hex()
    except (KeyError, TypeError, ValueError, AttributeError):
        rid = None
    wrong = [name for name, got, want in (
        ("payer", intent.get("payer"), me), ("payee", intent.get("payee"), original.get("payer")),
        ("currency", intent.get("currency"), original.get("currency")), ("amount", intent.get("amount"), amount),
        ("refundOf", intent.get("refundOf"), seq),
        ("refundId", str(intent.get("refundId", "")).lower(), rid)) if want is None or got != want]
    if wrong:
        raise WalletError(f"the server's refund of entry {seq} does not match the payment ({', '.join(wrong)}); "
                          "nothing signed", "refund_mismatch")


@handled
def refund(seq: int = typer.Argument(..., min=1, help="The entry number of the payment to refund"),
           amount: str = typer.Option(None, "--amount", help="How much ('12.50', '1h30m'); default: all that remains"),
           yes: bool = typer.Option(False, "--yes", "-y", help="Sign without asking"),
           api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
           as_json: bool = JSON_OPT) -> None:
    """Refund all or part of a payment you received: signed here with your key, linked to it in the log."""
    cfg, c = _session(api, key, password_file)
    with c:
        community = c.community(pin_chain_id=cfg.chain_id, pin_salt=cfg.community_salt)
        try:
            t = c.get(f"/v1/transfers/{seq}")
        except WalletError as exc:  # not a party: the server does not show it (and says why in a code)
            if exc.code not in ("purpose_required", "purpose_not_allowed", "forbidden"):
                raise
            t = {}
        if t.get("payee") != c.address:
            raise WalletError(f"entry {seq} is not a payment to you; only its payee refunds it", "not_authorised")
        cur = community.currency(t["currency"])
        minor = t.get("refundableRemaining", 0) if amount is None else cur.parse(amount)
        if not minor:
            raise WalletError(f"nothing of entry {seq} remains refundable", "refund_exceeds_remaining")
        intent = c.post(f"/v1/transfers/{seq}/refunds", {"amount": minor})
        check_refund_intent(intent, t, seq, minor, c.address)
        _confirm(f"refund {cur.format(minor)} {cur.code} of entry {seq} to {visible(intent['payee'])} "
                 f"(refundable before this: {cur.format(intent['refundableRemaining'])})", yes, as_json)
        body = sign_transfer(c, c.key, community, payee=intent["payee"], currency=cur.code, amount=minor, memo=None,
                             request_id=bytes.fromhex(intent["refundId"][2:]))
        _send_transfer(c, body, community, as_json)


# -- the shop's profile ---------------------------------------------------------------------------
def _show(p: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(p))
        return
    share = p.get("creditShareBp")
    typer.echo(f"{visible(p['name'])} ({'published' if p['published'] else 'NOT published'})\n"
               f"  address: {visible(p.get('postalAddress') or '-')}\n"
               f"  opening hours: {visible(p.get('openingHours') or '-')}\n"
               f"  share taken in credit: {'-' if share is None else f'{share / 100:g} %'}\n"
               f"  account: {visible(p['address'])}")


def _share_bp(text: str | None) -> int | None:
    """'30%' or '30' (percent, up to 2 decimals) -> basis points."""
    if text is None:
        return None
    t = text.strip().removesuffix("%").strip()
    whole, _, frac = t.partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
        raise WalletError(f"--credit-share {text!r} is not a percentage like 30 or 12.5", "invalid_input")
    bp = int(whole) * 100 + int((frac + "00")[:2])
    if bp > 10_000:
        raise WalletError("--credit-share is at most 100 %", "invalid_input")
    return bp


@handled
def profile_set(name: str = typer.Option(..., "--name", help="The shop's name, as customers see it"),
                postal_address: str = typer.Option(None, "--postal-address", help="Street address to publish"),
                opening_hours: str = typer.Option(None, "--opening-hours", help="e.g. 'Mon-Sat 8-14'"),
                credit_share: str = typer.Option(None, "--credit-share", help="Share of a price taken in credit, "
                                                 "percent (mixed payments): 30 or 30%"),
                unpublished: bool = typer.Option(False, "--unpublished", help="Save without publishing"),
                api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
                as_json: bool = JSON_OPT) -> None:
    """Set (and publish) your shop's public profile."""
    cfg, c = _session(api, key, password_file)
    with c:
        p = c.request("PUT", f"/v1/shops/{c.address}/profile", json={
            "name": name, "postalAddress": postal_address, "openingHours": opening_hours,
            "creditShareBp": _share_bp(credit_share), "published": not unpublished})
    _show(p, as_json)


@handled
def profile_show(address: str = typer.Argument(None, help="A shop's address (default: yours)"),
                 api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
                 as_json: bool = JSON_OPT) -> None:
    """Show a shop's published profile (yours even when unpublished)."""
    cfg, c = _session(api, key, password_file)
    with c:
        p = c.get(f"/v1/shops/{address or c.address}")
    _show(p, as_json)


@handled
def profile_unpublish(api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
                      as_json: bool = JSON_OPT) -> None:
    """Hide your shop's profile from customers and the board (kept for you; set it again to publish)."""
    cfg, c = _session(api, key, password_file)
    with c:
        p = c.post(f"/v1/shops/{c.address}/profile/unpublish")
    _show(p, as_json)


@handled
def profile_erase(api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
                  as_json: bool = JSON_OPT) -> None:
    """Erase your shop's profile."""
    cfg, c = _session(api, key, password_file)
    with c:
        r = c.request("DELETE", f"/v1/shops/{c.address}/profile")
    typer.echo(json.dumps(r) if as_json else f"erased {r['erased']} profile")


PROFILE_COMMANDS = [("set", profile_set), ("show", profile_show), ("unpublish", profile_unpublish),
                    ("erase", profile_erase)]
