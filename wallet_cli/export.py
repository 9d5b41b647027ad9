"""`ayni-wallet export`: the log as accountants use it, CSV or Beancount, for a date range.

Entries are checked as they stream (sequence, hashes, chain, replay of the rules: the same
fold as `reconcile`, without signature recovery) and the export is refused if the log does
not hold together: books are only as good as the log they come from. Written atomically.

CSV: one row per posting (a transfer is two postings: the payer's debit and the payee's
credit), columns in COLUMNS, stable; amounts as integers in minor units plus a display form.
Beancount: one account per member and currency (`Assets:Ayni:<CODE>:<address>`), one
commodity per currency in its minor unit (`HOUR-MIN` counts minutes, `CRED` counts...
hundredths are shown as decimals since they are exact), opening balances at the start of
the range (they sum to zero, so they balance without an equity account), and balance
assertions after every month end and at the end of the range.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import typer

from ledger.core import log_format
from ledger.core.amounts import Currency
from ledger.core.fold import decode
from ledger.core.reconcile import Reconciler
from ledger.core.records import Genesis, TransferPosted
from ledger.files import write_atomic

from .config import API_OPT, JSON_OPT, KEY_OPT, PASSWORD_FILE_OPT

COLUMNS = ["seq", "date", "time_utc", "entry_hash", "transfer_id", "account", "counterparty", "direction",
           "currency", "amount_minor", "minor_unit", "amount", "request_id"]
ZERO_REQUEST = "0x" + "00" * 32


class ExportError(Exception):
    """One line for the user; the command exits non-zero and writes nothing."""


def _day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).date()


def _parse_day(text: str | None, what: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ExportError(f"{what} must be a date like 2026-01-31, not {text!r}") from None


# -- reading ----------------------------------------------------------------------------------
def entries_from_file(path: Path) -> Iterator[dict]:
    try:
        f = open(path, encoding="ascii", newline="\n")
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror}") from None
    with f:
        try:
            yield from log_format.ExportReader(f, name=str(path)).entries()
        except log_format.ExportInvalid as exc:
            raise ExportError(str(exc)) from None
        except UnicodeDecodeError:
            raise ExportError(f"{path} is not an Ayni log export") from None


def entries_from_api(client, page: int = 1000) -> Iterator[dict]:
    after = 0
    while True:
        data = client.get("/v1/log", params={"after": after, "limit": page})
        if not (isinstance(data, dict) and isinstance(data.get("entries"), list)):
            raise ExportError("the server's log page is not {entries: [...]}")
        entries = data["entries"]
        for entry in entries:
            if not (isinstance(entry, dict) and type(entry.get("seq")) is int and entry["seq"] > after):
                raise ExportError("the server's log pages do not advance or hold an entry without a seq")
            after = entry["seq"]
            yield entry
        if not entries or data.get("nextAfter") is None:
            return


# -- the books ------------------------------------------------------------------------------
class Books:
    """Postings and balances from a checked stream of entries."""

    def __init__(self, start: dt.date | None, end: dt.date | None):
        self.start, self.end = start, end
        self.rec = Reconciler(verify_signatures=False)
        self.currencies: dict[str, Currency] = {}
        self.community = ""
        self.opened: dict[str, dt.date] = {}  # account -> day it was opened
        self.opening: dict[tuple[str, str], int] = {}  # balances before `start`
        self.postings: list[dict] = []  # within the range, in log order
        self.first_day: dt.date | None = None

    def add(self, entry: dict) -> None:
        self.rec.feed(entry)
        if self.rec.report.counts:
            d = self.rec.report.discrepancies[0]
            raise ExportError(f"the log does not hold together at seq {d.seq} ({d.check}: {d.detail or d.found}); "
                              "run `ayni-wallet reconcile` for the full report")
        body, day = entry["body"], _day(entry["at"])
        # The fold's typed record says what the entry is (ledger.core.fold, the one place that
        # dispatches on kind strings): a kind the export does not book needs no edit here.
        record = decode(entry["kind"], body)
        if isinstance(record, Genesis):
            self.community = record.community
            self.currencies = {c.code: c for c in record.currencies}
            self.first_day = day
        if record.opens is not None:
            self.opened.setdefault(record.opens, day)  # a later alliance reuses its peer account
        if isinstance(record, TransferPosted):
            if self.end is not None and day > self.end:
                return
            legs = ((body["payer"], body["payee"], -body["amount"], "out"),
                    (body["payee"], body["payer"], body["amount"], "in"))
            if self.start is not None and day < self.start:
                for account, _, amount, _ in legs:
                    key = (account, body["currency"])
                    self.opening[key] = self.opening.get(key, 0) + amount
                return
            for account, other, amount, direction in legs:
                self.postings.append({"seq": entry["seq"], "day": day, "at": entry["at"],
                                      "entry_hash": entry["entryHash"], "transfer_id": body["digest"],
                                      "account": account, "counterparty": other, "direction": direction,
                                      "currency": body["currency"], "amount": amount,
                                      "request_id": body["requestId"]})

    def finish(self) -> None:
        if self.rec.state.genesis is None:
            raise ExportError("the log is empty: nothing to export")


def _quoted(text: str) -> str:
    """A Beancount string literal: backslashes and quotes escaped, one line."""
    return '"' + " ".join(str(text).split()).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _display(cur: Currency, minor: int) -> str:
    return ("-" if minor < 0 else "") + cur.format(abs(minor))


def _unit(cur: Currency) -> str:
    return "minute" if cur.style == "time" else str(Decimal(1).scaleb(-cur.decimals))


def write_csv(books: Books, out) -> int:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for p in books.postings:
        cur = books.currencies[p["currency"]]
        w.writerow([p["seq"], p["day"].isoformat(),
                    dt.datetime.fromtimestamp(p["at"] / 1000, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3],
                    p["entry_hash"], p["transfer_id"], p["account"], p["counterparty"], p["direction"],
                    p["currency"], p["amount"], _unit(cur), _display(cur, p["amount"]),
                    "" if p["request_id"] == ZERO_REQUEST else p["request_id"]])
    return len(books.postings)


def commodity(cur: Currency) -> str:
    return f"{cur.code}-MIN" if cur.style == "time" else cur.code


def bean_amount(cur: Currency, minor: int, *, exact: bool = False) -> str:
    """`exact`: a balance assertion with zero tolerance. Beancount otherwise tolerates half
    the last digit's unit either way (and 1 unit for 2-decimal amounts), so an edit of one
    cent would pass bean-check; the books are integers and must match to the minor unit."""
    number = str(minor) if cur.style == "time" else f"{Decimal(minor).scaleb(-cur.decimals):f}"
    if exact:
        zero = "0" if cur.style == "time" or cur.decimals == 0 else f"{Decimal(0).scaleb(-cur.decimals):f}"
        return f"{number} ~ {zero} {commodity(cur)}"
    return f"{number} {commodity(cur)}"


def account_name(currency: str, address: str) -> str:
    return f"Assets:Ayni:{currency}:{address}"


def _month_ends(first: dt.date, last: dt.date) -> list[dt.date]:
    out, d = [], dt.date(first.year, first.month, 1)
    while d <= last:
        nxt = dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)
        end = nxt - dt.timedelta(days=1)
        if first <= end < last:
            out.append(end)
        d = nxt
    return out + [last]


def write_beancount(books: Books, out) -> int:
    cur_of = books.currencies
    days = [p["day"] for p in books.postings]
    start = books.start or books.first_day
    end = books.end or (max(days) if days else start)
    w = out.write
    w(f'option "title" {_quoted(f"Ayni: {books.community} ({start} to {end})")}\n')
    w('option "booking_method" "NONE"\n\n')
    for code, cur in sorted(cur_of.items()):
        unit = "minutes" if cur.style == "time" else f"units of {_unit(cur)}"
        w(f'{books.first_day} commodity {commodity(cur)}\n  name: {_quoted(f"{cur.name} ({unit})")}\n\n')
    accounts = sorted({(a, c) for (a, c) in books.rec.state.positions if a in books.opened
                       and books.opened[a] <= end})
    for address, code in accounts:
        w(f"{books.opened[address]} open {account_name(code, address)} {commodity(cur_of[code])}\n")
    w("\n")
    balances = {k: v for k, v in books.opening.items()}
    opening = [(k, v) for k, v in sorted(books.opening.items()) if v]
    if opening:
        w(f'{start} * "Opening balances" "balances carried from before {start}"\n')
        for (address, code), amount in opening:
            w(f"  {account_name(code, address)}  {bean_amount(cur_of[code], amount)}\n")
        w("\n")
    checkpoints = _month_ends(start, end)
    ci = 0

    def assertions(upto: dt.date) -> None:
        nxt = upto + dt.timedelta(days=1)  # a balance directive holds at the start of its day
        for address, code in accounts:
            if books.opened[address] <= upto:
                w(f"{nxt} balance {account_name(code, address)}  "
                  f"{bean_amount(cur_of[code], balances.get((address, code), 0), exact=True)}\n")
        w("\n")

    postings = books.postings
    for i in range(0, len(postings), 2):
        payer, payee = postings[i], postings[i + 1]
        while ci < len(checkpoints) and payer["day"] > checkpoints[ci]:
            assertions(checkpoints[ci])
            ci += 1
        cur = cur_of[payer["currency"]]
        w(f'{payer["day"]} * "transfer" "entry {payer["seq"]}"\n'
          f'  seq: {payer["seq"]}\n  entry_hash: "{payer["entry_hash"]}"\n')
        if payer["request_id"] != ZERO_REQUEST:
            w(f'  request_id: "{payer["request_id"]}"\n')
        for p in (payer, payee):
            w(f'  {account_name(p["currency"], p["account"])}  {bean_amount(cur, p["amount"])}\n')
            balances[(p["account"], p["currency"])] = balances.get((p["account"], p["currency"]), 0) + p["amount"]
        w("\n")
    while ci < len(checkpoints):
        assertions(checkpoints[ci])
        ci += 1
    return len(postings) // 2


def export(entries, out_path: Path, *, fmt: str, start: dt.date | None, end: dt.date | None) -> dict:
    if start and end and start > end:
        raise ExportError(f"--from {start} is after --to {end}")
    books = Books(start, end)
    for entry in entries:
        books.add(entry)
    books.finish()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    count = write_csv(books, buf) if fmt == "csv" else write_beancount(books, buf)
    write_atomic(out_path, buf.getvalue(), mode=0o600)  # books name every member: not world-readable
    return {"path": str(out_path), "format": fmt, "rows" if fmt == "csv" else "transactions": count,
            "through_seq": books.rec.report.head_seq}


def export_cmd(
    out: Path = typer.Option(..., "--out", help="File to write (replaced atomically)"),
    fmt: str = typer.Option("csv", "--format", help="csv | beancount"),
    start: str = typer.Option(None, "--from", help="First day (UTC, YYYY-MM-DD; default: the beginning)"),
    end: str = typer.Option(None, "--to", help="Last day, inclusive (UTC; default: the last entry)"),
    log: Path = typer.Option(None, "--log", help="Read an export file (`ayni export-log`) instead of the API"),
    api: str = API_OPT,
    key: str = KEY_OPT,
    password_file: Path = PASSWORD_FILE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Export postings for accountants: CSV (one row per posting) or Beancount (checked books)."""
    import json

    from .config import WalletError
    from .config import fail
    try:
        if fmt not in ("csv", "beancount"):
            raise ExportError(f"--format must be csv or beancount, not {fmt!r}")
        first, last = _parse_day(start, "--from"), _parse_day(end, "--to")
        if log is not None:
            source = entries_from_file(log)
        else:
            from .client import open_ledger_reader
            from .config import load_config
            client = open_ledger_reader(load_config(api_url=api, keystore=key, password_file=password_file))
            source = entries_from_api(client)
        summary = export(source, out, fmt=fmt, start=first, end=last)
    except (ExportError, WalletError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    typer.echo(json.dumps(summary) if as_json else
               f"wrote {summary.get('rows', summary.get('transactions'))} "
               f"{'rows' if fmt == 'csv' else 'transactions'} to {out} (log checked through seq "
               f"{summary['through_seq']})")

