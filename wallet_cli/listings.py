"""`ayni-wallet listings ...`: the exchange board (docs/exchange.md) from the terminal.

Post offers and needs, search them (newest first or the daily shuffle: nothing else, nothing
ranked), answer one, talk, agree an arrangement, ask for its payment. The receiver pays with
the existing `ayni-wallet approve <requestId>`. Reading other members' listings sends the
purpose `exchange`; everything else is the member's own data. Text written by other members is
shown through `visible` (no terminal control reaches the screen)."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ledger.core.purposes import EXCHANGE_PURPOSE
from ledger.core.text import visible

from .config import API_OPT, JSON_OPT, KEY_OPT, PASSWORD_FILE_OPT, WalletError, handled
from .member import _fmt, _session, _table, _when

ID = typer.Argument(..., help="The id (32 hex characters)")


def _price(community, currency: str, price: str | None, per: str) -> int | None:
    if per == "agree":
        if price is not None:
            raise WalletError('a price "to agree" takes no --price', "invalid_input")
        return None
    if price is None:
        raise WalletError(f"--price is needed with --per {per} (or use --per agree)", "invalid_input")
    return community.currency(currency).parse(price)


def _slots(slots: list[str] | None) -> list[dict] | None:
    """--slot mon:09:00-12:00 (repeatable)."""
    if not slots:
        return None
    out = []
    for s in slots:
        day, _, times = s.partition(":")
        start, _, end = times.partition("-")
        if not (day and start and end):
            raise WalletError(f"--slot {s!r}: write it as mon:09:00-12:00", "invalid_input")
        out.append({"day": day, "from": start, "to": end})
    return out


def _show(c, items: list[dict], title: str) -> None:
    community = c.community()
    rows = []
    for i in items:
        price = "to agree" if i["priceUnit"] == "agree" else \
            f"{_fmt(community, i['currency'], i['price'])} {i['currency']}/{i['priceUnit']}"
        flag = i["status"] + (" (hidden)" if i.get("hidden") else "")
        rows.append([i["id"], i["kind"], i["title"], i["categoryLabel"], i["areaLabel"], price, flag,
                     _when(i["expiresAt"])])
    _table(title, ["id", "kind", "title", "category", "area", "price", "status", "expires"], rows)


def _out(data, as_json: bool, human) -> None:
    if as_json:
        typer.echo(json.dumps(data))
    else:
        human(data)


# -- listings --------------------------------------------------------------------------------
@handled
def config(api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
           as_json: bool = JSON_OPT) -> None:
    """The cooperative's categories and neighbourhoods."""
    _, c = _session(api, key, password_file)
    with c:
        doc = c.get("/v1/listings/config")
    _out(doc, as_json, lambda d: typer.echo(
        "categories: " + ", ".join(visible(x["id"]) for x in d["categories"]) + "\nareas: "
        + ", ".join(visible(x["id"]) for x in d["areas"])))


@handled
def post(kind: str = typer.Option(..., "--kind", help="offer | need"),
         title: str = typer.Option(..., "--title"), description: str = typer.Option("", "--description"),
         category: str = typer.Option(..., "--category"), area: str = typer.Option(..., "--area"),
         currency: str = typer.Option("HOUR", "--currency"),
         price: str = typer.Option(None, "--price", help="per hour or item: 1h30m for HOUR, 12.50 for CRED"),
         per: str = typer.Option("hour", "--per", help="hour | item | agree"),
         availability: str = typer.Option(None, "--availability"),
         slot: list[str] = typer.Option(None, "--slot", help="mon:09:00-12:00 (repeatable)"),
         days: int = typer.Option(None, "--days", help="expiry: offers 30 days, needs 7 by default; at most 90"),
         api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
         as_json: bool = JSON_OPT) -> None:
    """Post an offer or a need."""
    _, c = _session(api, key, password_file)
    with c:
        community = c.community()
        body = {"kind": kind, "title": title, "description": description, "category": category, "area": area,
                "currency": currency, "priceUnit": per, "price": _price(community, currency, price, per),
                "availability": availability, "slots": _slots(slot), "expiresInDays": days}
        item = c.post("/v1/listings", {k: v for k, v in body.items() if v is not None})
    _out(item, as_json, lambda i: typer.echo(f"posted {i['kind']} {i['id']}, expires {_when(i['expiresAt'])}"))


@handled
def search(kind: str = typer.Option(None, "--kind"), category: str = typer.Option(None, "--category"),
           area: str = typer.Option(None, "--area"), currency: str = typer.Option(None, "--currency"),
           text: str = typer.Option(None, "--text", help="whole words in title or description"),
           shuffle: bool = typer.Option(False, "--shuffle", help="today's shuffle instead of newest first"),
           limit: int = typer.Option(50, min=1, max=500), cursor: str = typer.Option(None, "--cursor"),
           api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
           as_json: bool = JSON_OPT) -> None:
    """Search the board (purpose `exchange`): newest first, or the daily shuffle."""
    _, c = _session(api, key, password_file)
    with c:
        page = c.get("/v1/listings", {"kind": kind, "category": category, "area": area, "currency": currency,
                                      "q": text, "order": "shuffle" if shuffle else "newest", "limit": limit,
                                      "cursor": cursor}, purpose=EXCHANGE_PURPOSE)
        if as_json:
            typer.echo(json.dumps(page))
            return
        _show(c, page["items"], f"listings ({page['order']})")
    if page.get("nextCursor"):
        typer.echo(f"more: --cursor {visible(page['nextCursor'])}")


@handled
def mine(status: str = typer.Option(None, "--status", help="active | paused | closed | expired | hidden"),
         limit: int = typer.Option(50, min=1, max=500), cursor: str = typer.Option(None, "--cursor"),
         api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
         as_json: bool = JSON_OPT) -> None:
    """Your own listings, every status."""
    _, c = _session(api, key, password_file)
    with c:
        page = c.get("/v1/listings/mine", {"status": status, "limit": limit, "cursor": cursor})
        if as_json:
            typer.echo(json.dumps(page))
            return
        _show(c, page["items"], "your listings")
        for i in page["items"]:
            if i.get("hidden"):
                typer.echo(f"{i['id']} hidden by a treasurer: {visible(i['hidden']['reason'])}")


@handled
def show(listing_id: str = ID, api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
         as_json: bool = JSON_OPT) -> None:
    """One listing, in full."""
    _, c = _session(api, key, password_file)
    with c:
        i = c.get(f"/v1/listings/{listing_id}", purpose=EXCHANGE_PURPOSE)
    _out(i, as_json, lambda i: typer.echo("\n".join(visible(str(x)) for x in (
        f"{i['kind']}: {i['title']}", i["description"], f"{i['categoryLabel']}, {i['areaLabel']}",
        f"availability: {i.get('availability') or '-'}", f"status: {i['status']}, expires {_when(i['expiresAt'])}"))))


@handled
def edit(listing_id: str = ID, title: str = typer.Option(None, "--title"),
         description: str = typer.Option(None, "--description"), category: str = typer.Option(None, "--category"),
         area: str = typer.Option(None, "--area"), availability: str = typer.Option(None, "--availability"),
         days: int = typer.Option(None, "--days", help="expire this many days from now (at most 90)"),
         api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
         as_json: bool = JSON_OPT) -> None:
    """Change your listing (only the options given)."""
    body = {k: v for k, v in {"title": title, "description": description, "category": category, "area": area,
                              "availability": availability, "expiresInDays": days}.items() if v is not None}
    if not body:
        raise WalletError("nothing to change: give at least one option", "invalid_input")
    _, c = _session(api, key, password_file)
    with c:
        i = c.request("PATCH", f"/v1/listings/{listing_id}", json=body)
    _out(i, as_json, lambda i: typer.echo(f"updated {i['id']}"))


def _listing_action(action: str, doc: str):
    @handled
    def command(listing_id: str = ID, api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
                as_json: bool = JSON_OPT) -> None:
        _, c = _session(api, key, password_file)
        with c:
            i = c.post(f"/v1/listings/{listing_id}/{action}")
        _out(i, as_json, lambda i: typer.echo(f"{i['id']} is {i['status']}"))
    command.__doc__ = doc
    command.__name__ = action
    return command


pause = _listing_action("pause", "Pause your listing (out of search until resumed).")
resume = _listing_action("resume", "Resume your paused listing.")
close = _listing_action("close", "Close your listing (final; no reason asked).")


def _moderation(action: str):
    @handled
    def command(listing_id: str = ID, reason: str = typer.Option(..., "--reason", help="the author reads it"),
                api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
                as_json: bool = JSON_OPT) -> None:
        _, c = _session(api, key, password_file)
        with c:
            i = c.post(f"/v1/listings/{listing_id}/{action}", {"reason": reason})
        _out(i, as_json, lambda i: typer.echo(f"{action} {i['id']}: done (logged; the author sees the reason)"))
    command.__doc__ = f"Treasurer: {action} a listing, with a reason its author sees."
    command.__name__ = action
    return command


hide, unhide = _moderation("hide"), _moderation("unhide")


# -- conversations ---------------------------------------------------------------------------
@handled
def answer(listing_id: str = ID, message: str = typer.Option(..., "--message", "-m"),
           api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
           as_json: bool = JSON_OPT) -> None:
    """"I can help" / "I'm interested": a private conversation with the listing's author."""
    _, c = _session(api, key, password_file)
    with c:
        conv = c.post(f"/v1/listings/{listing_id}/conversations", {"message": message})
    _out(conv, as_json, lambda v: typer.echo(f"conversation {v['id']} about {visible(v['listing']['title'])}"))


@handled
def conversations(limit: int = typer.Option(50, min=1, max=500), cursor: str = typer.Option(None, "--cursor"),
                  api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
                  as_json: bool = JSON_OPT) -> None:
    """Your conversations, latest first."""
    _, c = _session(api, key, password_file)
    with c:
        page = c.get("/v1/conversations", {"limit": limit, "cursor": cursor})
    if as_json:
        typer.echo(json.dumps(page))
        return
    _table("your conversations", ["id", "listing", "with", "last message"],
           [[v["id"], v["listing"]["title"], v["responder"] if v["you"] == "author" else v["author"],
             _when(v["lastMessageAt"])] for v in page["items"]])


@handled
def messages(conversation_id: str = ID, after: int = typer.Option(0, "--after", min=0),
             api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
             as_json: bool = JSON_OPT) -> None:
    """The messages of one of your conversations, oldest first."""
    _, c = _session(api, key, password_file)
    with c:
        page = c.get(f"/v1/conversations/{conversation_id}/messages", {"after": after})
        me = c.address
    _out(page, as_json, lambda p: [typer.echo(f"[{m['id']}] {_when(m['at'])} "
                                              f"{'you' if m['from'] == me else visible(m['from'])}: "
                                              f"{visible(m['text'])}") for m in p["items"]])


@handled
def send(conversation_id: str = ID, text: str = typer.Option(..., "--text", "-m"),
         api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
         as_json: bool = JSON_OPT) -> None:
    """Write in one of your conversations."""
    _, c = _session(api, key, password_file)
    with c:
        m = c.post(f"/v1/conversations/{conversation_id}/messages", {"text": text})
    _out(m, as_json, lambda m: typer.echo(f"sent [{m['id']}]"))


# -- arrangements ----------------------------------------------------------------------------
def _arrangement_line(c, a) -> str:
    community = c.community()
    return visible(f"{a['id']} {a['status']}: {a['what']} ({a.get('when') or '-'}), "
                   f"{_fmt(community, a['currency'], a['amount'])} {a['currency']}"
                   + (f", payment request {a['requestId']}" if a.get("requestId") else ""))


@handled
def propose(conversation_id: str = ID, what: str = typer.Option(..., "--what"),
            when: str = typer.Option(None, "--when"), currency: str = typer.Option("HOUR", "--currency"),
            amount: str = typer.Option(..., "--amount", help="1h30m for HOUR, 12.50 for CRED"),
            minutes: int = typer.Option(None, "--minutes", help="time of the work (HOUR: the amount)"),
            api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
            as_json: bool = JSON_OPT) -> None:
    """Propose an arrangement in a conversation; the other party accepts it."""
    _, c = _session(api, key, password_file)
    with c:
        body = {"what": what, "when": when, "currency": currency,
                "amount": c.community().currency(currency).parse(amount), "minutes": minutes}
        a = c.post(f"/v1/conversations/{conversation_id}/arrangements",
                   {k: v for k, v in body.items() if v is not None})
        _out(a, as_json, lambda a: typer.echo("proposed " + _arrangement_line(c, a)))


@handled
def arrangements(status: str = typer.Option(None, "--status",
                                            help="proposed | accepted | payment_requested | paid | cancelled"),
                 api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
                 as_json: bool = JSON_OPT) -> None:
    """Your arrangements, newest first."""
    _, c = _session(api, key, password_file)
    with c:
        page = c.get("/v1/arrangements", {"status": status})
        _out(page, as_json, lambda p: [typer.echo(_arrangement_line(c, a)) for a in p["items"]])


def _arrangement_action(action: str, doc: str):
    @handled
    def command(arrangement_id: str = ID, api: str = API_OPT, key: str = KEY_OPT,
                password_file: Path = PASSWORD_FILE_OPT, as_json: bool = JSON_OPT) -> None:
        _, c = _session(api, key, password_file)
        with c:
            a = c.post(f"/v1/arrangements/{arrangement_id}/{action}")
            _out(a, as_json, lambda a: typer.echo(_arrangement_line(c, a)))
    command.__doc__ = doc
    command.__name__ = action
    return command


accept = _arrangement_action("accept", "Accept the other party's proposal.")
cancel = _arrangement_action("cancel", "Cancel an arrangement (no reason asked, no penalty).")


@handled
def bill(arrangement_id: str = ID, memo: str = typer.Option(None, "--memo"),
         api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
         as_json: bool = JSON_OPT) -> None:
    """Provider: ask for the agreed payment (a payment request the receiver approves)."""
    _, c = _session(api, key, password_file)
    with c:
        r = c.post(f"/v1/arrangements/{arrangement_id}/request-payment", {"memo": memo} if memo else {})
    _out(r, as_json, lambda r: typer.echo(f"payment request {r['request']['id']} sent to {r['request']['payer']}; "
                                          f"they pay it with: ayni-wallet approve {r['request']['id']}"))


@handled
def thank(arrangement_id: str = ID, text: str = typer.Option(..., "--text", "-m"),
          api: str = API_OPT, key: str = KEY_OPT, password_file: Path = PASSWORD_FILE_OPT,
          as_json: bool = JSON_OPT) -> None:
    """A private thank-you note: only the other party reads it, nothing counts it."""
    _, c = _session(api, key, password_file)
    with c:
        c.post(f"/v1/arrangements/{arrangement_id}/thanks", {"text": text})
    typer.echo(json.dumps({}) if as_json else "sent; only they will read it")


COMMANDS = [("config", config), ("post", post), ("search", search), ("mine", mine), ("show", show), ("edit", edit),
            ("pause", pause), ("resume", resume), ("close", close), ("hide", hide), ("unhide", unhide),
            ("answer", answer), ("conversations", conversations), ("messages", messages), ("send", send),
            ("propose", propose), ("arrangements", arrangements), ("accept", accept), ("cancel", cancel),
            ("bill", bill), ("thank", thank)]
