"""Member commands: balance, pay, request, requests, approve, decline, history, receipt.

Transfers are signed here, with the member's key, over the EIP-712 domain the API
publishes at /v1/community (checked against the pins in the config); the server only
ever sees the signature. Reads sign in with the same key (SIWE, see client.py).
"""
from __future__ import annotations

import json
import re
import secrets
import sys
import time
from pathlib import Path

import typer

from ledger.core.addresses import normalize_address
from ledger.core.codec import hex0x
from ledger.core.hashing import ZERO32
from ledger.core.purposes import MUST_CHOOSE, purpose_for, purposes_to_offer
from ledger.core.text import visible
from ledger.core.typed_data import Transfer, memo_hash, sign_action

from .client import ApiClient, Community, open_client
from .config import API_OPT, JSON_OPT, KEY_OPT, PASSWORD_FILE_OPT, WalletError, handled, load_config, note

DEFAULT_VALIDITY_S = 3600
RETRIES = 3                       # resends of one signed payload after a lost connection
PURPOSE_OPT = typer.Option(None, "--purpose", help="Why you read another member's data (sent as Ayni-Purpose; "
                           "required for anyone's data but yours, e.g. account_administration for a balance, "
                           "reconciliation for history or a receipt; see GET /v1/data-policy)")
_DURATION = re.compile(r"([0-9]{1,7})([smhd]?)", re.ASCII)


def _session(api, key, password_file):
    cfg = load_config(api_url=api, keystore=key, password_file=password_file)
    return cfg, open_client(cfg)


def _purpose_needed(c: ApiClient) -> WalletError:
    """Reading another member's data is a choice the reader declares: never filled in for them."""
    try:
        declared = ", ".join(purposes_to_offer(c.get("/v1/data-policy", auth=False)))
    except (WalletError, KeyError, TypeError, AttributeError):
        declared = "see GET /v1/data-policy"
    return WalletError(f"reading another member's data needs --purpose; declared purposes: {declared}",
                       "purpose_required")


def _purpose(c: ApiClient, who: str, given: str | None) -> str | None:
    """The purpose for reading `who`'s data (ledger/core/purposes.py), or the demand for one."""
    chosen = purpose_for(reader=c.address, subject=who, given=given)
    if chosen is MUST_CHOOSE:
        raise _purpose_needed(c)
    return chosen


def _read(c: ApiClient, path: str, params: dict | None = None, *, purpose: str | None):
    """GET data that may be another member's: without --purpose, the server's refusal becomes
    the one-line demand for it (a receipt's seq does not say whose it is until asked)."""
    try:
        return c.get(path, params, purpose=purpose)
    except WalletError as exc:
        if exc.code == "purpose_required" and not purpose:
            raise _purpose_needed(c) from None
        raise


def _when(ms: int | None) -> str:
    return "" if ms is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))


def _fmt(community: Community, code: str, minor: int | None) -> str:
    if minor is None:
        return "none"
    cur = community.currencies.get(code)
    return cur.format(minor) if cur else str(minor)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    typer.echo(visible(title))
    t = Table()
    for c in columns:
        t.add_column(c, justify="right" if c in ("seq", "amount", "balance", "can spend", "limit",
                                                 "ceiling") else "left", overflow="fold")
    for r in rows:
        # memos and names are other people's text: never rich markup, never a terminal control
        t.add_row(*(escape(visible(x)) for x in r))
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped: full addresses and ids, no folding
    console.print(t)


def _confirm(summary: str, yes: bool, as_json: bool) -> None:
    typer.echo(summary, err=as_json)
    if yes:
        return
    if not sys.stdin.isatty():
        raise WalletError("not confirmed: add --yes to sign without a prompt", "not_confirmed")
    if not typer.confirm("sign and send?", default=False):
        raise WalletError("cancelled; nothing was signed", "cancelled")


def post_signed(api: ApiClient, body: dict, *, note, path: str = "/v1/transfers") -> dict:
    """POST a signed transfer; after a lost connection or a busy server, resend the very
    same signed payload (the server records a (signer, nonce) once and answers a resend
    with the original result), so a retry can never pay twice."""
    for attempt in range(RETRIES + 1):
        try:
            return api.post(path, body, auth=False)
        except WalletError as exc:
            if exc.code not in ("unreachable", "timeout", "unavailable") or attempt == RETRIES:
                if attempt:
                    nonce = (body.get("transfer") or body.get("message") or {}).get("nonce")
                    raise WalletError(f"{exc.message} (after {attempt} resends of the same signed payload, "
                                      f"nonce {nonce}: it may have been recorded; check before signing "
                                      "again)", exc.code) from None
                raise
            note(f"{exc.message}; resending the same signed payload (the server records it only once)")
            time.sleep(0.5 * 2 ** attempt)
    raise AssertionError("unreachable")


def sign_transfer(api: ApiClient, key: bytes, community: Community, *, payee: str, currency: str, amount: int,
                  memo: str | None, request_id: bytes = ZERO32, valid_for: int = DEFAULT_VALIDITY_S) -> dict:
    """The POST /v1/transfers body of a transfer signed locally (api/schemas.py PostTransfer)."""
    salt = secrets.token_bytes(32) if memo else None
    t = Transfer.create(payer=api.address, payee=payee, currency=currency, amount=amount,
                        nonce=secrets.randbits(128), valid_until=int(time.time()) + valid_for,
                        memo_hash=memo_hash(memo, salt), request_id=request_id)
    body = {"transfer": {"payer": t.payer, "payee": t.payee, "currency": t.currency, "amount": t.amount,
                         "nonce": str(t.nonce), "validUntil": str(t.valid_until),
                         "memoHash": hex0x(t.memo_hash), "requestId": hex0x(t.request_id)},
            "signature": sign_action(key, community.domain, t)}
    if memo:
        body.update(memo=memo, memoSalt=hex0x(salt))
    return body


def _parse_duration(text: str) -> int:
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise WalletError(f"{text!r} is not a duration like 3600, 30m, 12h or 7d", "invalid_input")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _send_transfer(api: ApiClient, body: dict, community: Community, as_json: bool) -> None:
    posted = post_signed(api, body, note=note)
    t = body["transfer"]
    if as_json:
        typer.echo(json.dumps({**posted, "transfer": t}))
        return
    again = " (already recorded: this was a resend of the same signed transfer)" if posted.get("duplicate") else ""
    typer.echo(visible(f"paid {_fmt(community, t['currency'], t['amount'])} {t['currency']} to {t['payee']}: "
                       f"entry {posted['seq']}, digest {posted['digest']}{again}"))


@handled
def balance(account: str = typer.Argument(None, help="Another account (with --purpose; default: yours)"),
            purpose: str = PURPOSE_OPT, api: str = API_OPT, key: str = KEY_OPT,
            password_file: Path = PASSWORD_FILE_OPT,
            as_json: bool = JSON_OPT) -> None:
    """Your balances, credit limits and what you can still spend."""
    cfg, c = _session(api, key, password_file)
    with c:
        who = normalize_address(account, what="account") if account else c.address
        doc = _read(c, f"/v1/accounts/{who}", purpose=_purpose(c, who, purpose))
        if as_json:
            typer.echo(json.dumps(doc))
            return
        community = c.community()
    rows = [[b["currency"], _fmt(community, b["currency"], b["balance"]),
             _fmt(community, b["currency"], b["canSpend"]), _fmt(community, b["currency"], b["creditLimit"]),
             _fmt(community, b["currency"], b["ceiling"])] for b in doc["balances"]]
    _table(f"{doc['address']} ({doc['role']}, {doc['status']})",
           ["currency", "balance", "can spend", "limit", "ceiling"], rows)


@handled
def pay(payee: str = typer.Argument(..., help="Address of the account to pay; in an allied community: "
                                     "<community-id>:<address> (or --community)"),
        amount: str = typer.Argument(..., help="Amount: '1h30m' or '1.5' hours, '12.50' credits"),
        currency: str = typer.Option(None, "--currency", "-c", help="Currency code (default: $AYNI_CURRENCY, "
                                     "wallet.toml, or the community's only one)"),
        memo: str = typer.Option(None, "--memo", help="A note for the payee (kept off the log; erasable)"),
        yes: bool = typer.Option(False, "--yes", "-y", help="Sign without asking"),
        valid_for: int = typer.Option(DEFAULT_VALIDITY_S, min=60, help="Seconds the signature stays valid"),
        peer: str = typer.Option(None, "--community", help="The payee's community id (0x...), when it is an "
                                 "allied one: both amounts are shown before signing (docs/wallet.md)"),
        api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
        as_json: bool = JSON_OPT) -> None:
    """Sign a transfer locally (EIP-712), send it, and show the result."""
    from .remote_pay import pay_remote, split_payee
    peer_community, payee = split_payee(payee, peer)
    cfg, c = _session(api, key, password_file)
    with c:
        community = c.community(pin_chain_id=cfg.chain_id, pin_salt=cfg.community_salt)
        cur = community.currency(currency or cfg.currency)
        minor = cur.parse(amount)
        if peer_community is not None:
            pay_remote(c, community, cur, peer_community=peer_community, payee=payee, minor=minor, memo=memo,
                       yes=yes, valid_for=valid_for, as_json=as_json, confirm=_confirm)
            return
        _confirm(f"pay {cur.format(minor)} {cur.code} ({minor} minor units) to {payee}\n"
                 f"  from {c.address}, memo: {visible(memo) or '(none)'}, community {visible(community.name)!r} "
                 f"(chain {community.domain.chain_id})", yes, as_json)
        body = sign_transfer(c, c.key, community, payee=payee, currency=cur.code, amount=minor, memo=memo,
                             valid_for=valid_for)
        _send_transfer(c, body, community, as_json)


@handled
def request_(payer: str = typer.Option(None, "--from", help="Address of the account asked to pay; omitted: an "
                                       "open request any member may pay once (a shop's till)"),
             amount: str = typer.Option(..., "--amount", help="Amount: '1h30m', '12.50'"),
             till: str = typer.Option(None, "--till", help="A till or staff label (shops, docs/shops.md)"),
             currency: str = typer.Option(None, "--currency", "-c", help="Currency code"),
             memo: str = typer.Option(None, "--memo", help="What it is for (shown to the payer)"),
             expires: str = typer.Option("1d", "--expires", help="Valid for: 3600, 30m, 12h, 7d (1m-90d)"),
             api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
             as_json: bool = JSON_OPT) -> None:
    """Ask another account for a payment; prints the request id they approve."""
    cfg, c = _session(api, key, password_file)
    with c:
        community = c.community()
        cur = community.currency(currency or cfg.currency)
        body = {"payer": normalize_address(payer, what="payer") if payer else None, "currency": cur.code,
                "amount": cur.parse(amount), "memo": memo, "expiresInSeconds": _parse_duration(expires)}
        if till:
            body["till"] = till
        r = c.post("/v1/requests", body)
    if as_json:
        typer.echo(json.dumps(r))
    else:
        whom = "anyone (open request)" if r["payer"] is None else visible(r["payer"])
        typer.echo(f"requested {cur.format(r['amount'])} {visible(r['currency'])} from {whom} "
                   f"(expires {_when(r['expiresAt'])})\nrequest id: {visible(r['id'])}")


@handled
def requests_(incoming: bool = typer.Option(False, "--incoming", help="Requests you are asked to pay (default)"),
              outgoing: bool = typer.Option(False, "--outgoing", help="Requests you made"),
              status: str = typer.Option(None, "--status", help="open | paid | declined | expired"),
              limit: int = typer.Option(50, min=1, max=500), cursor: str = typer.Option(None, "--cursor"),
              api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
              as_json: bool = JSON_OPT) -> None:
    """Payment requests to you (--incoming) or from you (--outgoing), newest first."""
    if incoming and outgoing:
        raise WalletError("choose --incoming or --outgoing, not both", "invalid_input")
    direction = "outgoing" if outgoing else "incoming"
    cfg, c = _session(api, key, password_file)
    with c:
        page = c.get("/v1/requests", {"direction": direction, "status": status, "limit": limit,
                                      "cursor": cursor})
        if as_json:
            typer.echo(json.dumps(page))
            return
        community = c.community()
    other = "payee" if direction == "incoming" else "payer"
    _table(f"{direction} payment requests", ["id", other, "amount", "status", "expires", "memo"],
           [[r["id"], r[other], f"{_fmt(community, r['currency'], r['amount'])} {r['currency']}", r["status"],
             _when(r["expiresAt"]), r.get("memo") or ""] for r in page["items"]])
    if page.get("nextCursor"):
        typer.echo(f"more: --cursor {visible(page['nextCursor'])}")


@handled
def approve(request_id: str = typer.Argument(..., help="The request id (0x...)"),
            yes: bool = typer.Option(False, "--yes", "-y", help="Sign without asking"),
            api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
            as_json: bool = JSON_OPT) -> None:
    """Pay a payment request: sign a transfer that names it, for exactly what it asks."""
    cfg, c = _session(api, key, password_file)
    with c:
        community = c.community(pin_chain_id=cfg.chain_id, pin_salt=cfg.community_salt)
        r = c.get(f"/v1/requests/{request_id}")
        if r["payer"] is not None and r["payer"] != c.address:  # None: an open request, anyone pays it once
            raise WalletError(f"this request is addressed to {r['payer']}, not to you", "forbidden")
        if r["status"] != "open":
            paid = f" (entry {r['paidSeq']})" if r.get("paidSeq") else ""
            raise WalletError(f"request {r['id']} is {r['status']}{paid}; nothing was signed", "request_not_open")
        cur = community.currency(r["currency"])
        # the memo is the payee's text, shown right before "sign and send?": made visible, so it
        # cannot move the cursor or erase the line with the amount that is really signed
        _confirm(f"pay request {visible(r['id'])}:\n  {cur.format(r['amount'])} {cur.code} to "
                 f"{visible(r['payee'])}, memo: {visible(r.get('memo')) or '(none)'}", yes, as_json)
        body = sign_transfer(c, c.key, community, payee=r["payee"], currency=cur.code, amount=r["amount"],
                             memo=None, request_id=bytes.fromhex(r["id"][2:]))
        _send_transfer(c, body, community, as_json)


@handled
def decline(request_id: str = typer.Argument(..., help="The request id (0x...)"),
            api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
            as_json: bool = JSON_OPT) -> None:
    """Decline a payment request addressed to you."""
    cfg, c = _session(api, key, password_file)
    with c:
        r = c.post(f"/v1/requests/{request_id}/decline")
    typer.echo(json.dumps(r) if as_json else f"declined request {visible(r['id'])} from {visible(r['payee'])}")


@handled
def history(account: str = typer.Option(None, "--account", help="Another account (with --purpose)"),
            currency: str = typer.Option(None, "--currency", "-c"),
            counterparty: str = typer.Option(None, "--counterparty", help="Only transfers with this address"),
            limit: int = typer.Option(20, min=1, max=500, help="Transfers per page"),
            cursor: str = typer.Option(None, "--cursor", help="Continue after a previous page"),
            all_pages: bool = typer.Option(False, "--all", help="Follow every page"),
            purpose: str = PURPOSE_OPT, api: str = API_OPT, key: str = KEY_OPT,
            password_file: Path = PASSWORD_FILE_OPT,
            as_json: bool = JSON_OPT) -> None:
    """Your transfers, newest first, a page at a time."""
    cfg, c = _session(api, key, password_file)
    with c:
        who = normalize_address(account, what="account") if account else c.address
        purpose = _purpose(c, who, purpose)
        params = {"currency": currency, "limit": limit, "cursor": cursor,
                  "counterparty": normalize_address(counterparty, what="counterparty") if counterparty else None}
        items, nxt = [], None
        while True:
            page = _read(c, f"/v1/accounts/{who}/history", params, purpose=purpose)
            items += page["items"]
            nxt = page.get("nextCursor")
            if not (all_pages and nxt):
                break
            params["cursor"] = nxt
        if as_json:
            typer.echo(json.dumps({"account": who, "items": items, "nextCursor": nxt}))
            return
        community = c.community()
    rows = [_history_row(community, who, t) for t in items]
    _table(f"history of {who}", ["seq", "when", "dir", "counterparty", "amount", "status", "memo"], rows)
    remote = [t for t in items if t.get("remote")]
    for t in remote:  # full ids below the table, where a narrow terminal does not fold them
        r = t["remote"]
        typer.echo(visible(f"seq {t['seq']}: remote payment {r.get('paymentId')} "
                           f"{'to' if r.get('side') == 'out' else 'from'} {r.get('counterparty')} "
                           f"in community {r.get('community')} ({r.get('communityUrl')})"))
    if remote:
        typer.echo("remote: with a member of an allied community; `there` is what arrived (or was sent) there. "
                   "pending = held, not paid yet; failed = not paid, the hold went back")
    if nxt:
        typer.echo(f"more: --cursor {visible(nxt)}")


# What a member reads of a remote leg's state (ledger.queries.REMOTE_STATUS): a prepared leg is
# held, not paid; an aborted one was never paid and its hold went back.
REMOTE_STATUS = {"prepared": "pending", "committed": "completed", "aborted": "failed"}


def _history_row(community: Community, who: str, t: dict) -> list[str]:
    r = t.get("remote")
    if not r:
        out = t["payer"] == who
        sign = "-" if out else "+"
        return [str(t["seq"]), _when(t["at"]), "out" if out else "in", t["payee"] if out else t["payer"],
                f"{sign}{_fmt(community, t['currency'], t['amount'])} {t['currency']}", "",
                ((t.get("memo") or "") + (" [request]" if t.get("requestId") else "")).strip()]
    out = r.get("side") == "out"
    status = REMOTE_STATUS.get(r.get("state"), str(r.get("state")))
    # a pending or failed payment moved nothing (yet): no sign, as it is not a balance change
    sign = ("-" if out else "+") if status == "completed" else ""
    here = f"{sign}{_fmt(community, t['currency'], t['amount'])} {t['currency']}"
    # the other community formats its own currency: its minor units, as `pay` quotes them
    there = f"{r.get('amount')} minor units of {r.get('currency')} there"
    return [str(t["seq"]), _when(t["at"]), "remote out" if out else "remote in", str(r.get("counterparty")),
            f"{here} ({there})", status + (f" ({r['code']})" if r.get("code") else ""), t.get("memo") or ""]


@handled
def receipt(seq: int = typer.Argument(..., min=1, help="Entry seq of the transfer"),
            out: Path = typer.Option(None, "--out", help="Where to store it (default: the receipts "
                                     "directory, $XDG_DATA_HOME/ayni/receipts)"),
            purpose: str = PURPOSE_OPT, api: str = API_OPT, key: str = KEY_OPT,
            password_file: Path = PASSWORD_FILE_OPT,
            as_json: bool = JSON_OPT) -> None:
    """Download the receipt of an anchored transfer and keep it; check it with `verify`."""
    cfg, c = _session(api, key, password_file)
    with c:
        doc = _read(c, f"/v1/receipts/{seq}", purpose=purpose)  # none needed for your own
    if not isinstance(doc, dict) or "proof" not in doc:
        raise WalletError("the API's receipt is not a receipt document", "bad_response")
    from .keys import write_new_file
    path = out or cfg.receipts_dir / f"receipt-{seq}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_new_file(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o644, overwrite=True)
    b = doc.get("batch") or {}
    if as_json:
        typer.echo(json.dumps({"path": str(path), "seq": seq, "batch": b, "chainId": doc.get("chainId"),
                               "contract": doc.get("contract"), "txHash": doc.get("txHash")}))
    else:
        typer.echo(visible(f"receipt of entry {seq} (batch {b.get('firstSeq')}..{b.get('lastSeq')}, chain "
                           f"{doc.get('chainId')}) stored in {path}"))
        typer.echo(f"check it: ayni-wallet verify {path} (with anchor_contract and chain_id pinned)")
