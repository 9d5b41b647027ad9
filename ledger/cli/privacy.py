"""`ayni data-policy`, `ayni retention run`, `ayni stats`, `ayni org add|remove|list`: the
operator's side of data sovereignty (ledger/privacy, docs/privacy.md)."""
from __future__ import annotations

import json

import typer

from ..core import errors as E
from .options import fail_error, AsJson, Db, fail, open_ledger, say

POLICY_HELP = "A cooperative's own policy file (default: $AYNI_DATA_POLICY or the shipped policy)"


def data_policy(policy: str = typer.Option(None, "--policy", help=POLICY_HELP),
                as_json: bool = typer.Option(False, "--json", help="The full policy as JSON (as GET /v1/data-policy)")) -> None:
    """Print the data-use declaration: every item kept, why, who sees it, for how long."""
    from ..privacy.policy import load_policy
    try:
        p = load_policy(policy)
    except E.LedgerError as exc:
        fail_error(exc)
    if as_json:
        typer.echo(json.dumps(p.as_json(), indent=2, ensure_ascii=False))
        return
    say(f"Ayni data policy {p.policyVersion} (from {p.effectiveFrom})")
    for item in p.items:
        r = item.retention
        keep = f"{r.days} days" if r.kind == "period" else r.kind.replace("_", " ")
        say(f"- {item.id} [{item.category}{', essential' if item.essential else ''}]: "
                   f"kept {keep}; seen by {'; '.join(item.visibleTo)}")
    say("purposes: " + ", ".join(f"{u.id}{'*' if u.essential else ''}" for u in p.purposes)
               + "  (* essential: no grant needed)")
    for n in p.notKept:
        say(f"not kept: {n.item} ({n.why})")


def retention_run(db: Db = None,
                  policy: str = typer.Option(None, "--policy", help=POLICY_HELP),
                  as_json: AsJson = False) -> None:
    """Erase memos older than the policy's period, profiles of closed accounts, expired grants
    and challenges, and old access-log rows. The log, anchors and receipts stay verifiable."""
    from ..privacy.policy import load_policy
    from ..privacy.retention import run
    try:
        report = run(open_ledger(db), load_policy(policy))
    except E.LedgerError as exc:
        fail_error(exc)
    for warning in report.warnings:
        say(f"warning: {warning}", err=True)
    if as_json:
        typer.echo(json.dumps({**report.as_dict(), "bytes_on_disk": report.bytes_on_disk}))
    else:
        say("erased: " + ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in report.as_dict().items()))
        say("bytes on disk: gone" if report.bytes_on_disk == "gone" else
            "bytes on disk: pending (a reader still uses them; the next run, or a running server's "
            "retention, removes them)")


def stats(db: Db = None,
          k: int = typer.Option(None, "--k", help="Smallest group released (default and minimum: the "
                                "policy's minimumGroupSize, 5)"),
          policy: str = typer.Option(None, "--policy", help=POLICY_HELP),
          as_json: AsJson = False) -> None:
    """Aggregates for collective bargaining over closed months, groups smaller than k or
    dominated by one party suppressed. No per-person figure."""
    from ..privacy.policy import load_policy
    from ..privacy.stats import statistics
    try:
        least = load_policy(policy).statistics.minimumGroupSize
        if k is not None and k < least:
            fail(f"--k {k} is below the data policy's minimum group size {least}")
        k = least if k is None else k
        out = statistics(open_ledger(db), k=k)
    except E.LedgerError as exc:
        fail_error(exc)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    say(f"groups smaller than {k} members are suppressed (-)")
    for c in out["cells"]:
        figures = "-" if c.get("suppressed") else f"{c['transfers']} transfers, {c['amount']} minor units"
        say(f"{c['month']}  {c['currency']:5} to {c['payeeRole']:9} {figures}")
    for m in out["monthTotals"]:
        figures = "-" if m.get("suppressed") else f"{m['transfers']} transfers, {m['amount']} minor units"
        say(f"{m['month']}  {m['currency']:5} total        {figures}")
    for a in out["activeMembers"]:
        say(f"{a['month']}  active members: {a.get('members', '-')}")


def _preferences(db: str):
    from ..privacy.grants import Preferences
    from ..privacy.policy import load_policy
    return Preferences(open_ledger(db), load_policy())


def org_add(organisation: str, address: str, db: Db = None) -> None:
    """Record that ADDRESS acts for ORGANISATION (members' grants to it then cover that account)."""
    try:
        _preferences(db).add_to_organisation(organisation, address)
    except E.LedgerError as exc:
        fail_error(exc)
    say(f"{address} acts for {organisation.strip()!r}")


def org_remove(organisation: str, address: str, db: Db = None) -> None:
    """Record that ADDRESS no longer acts for ORGANISATION."""
    try:
        removed = _preferences(db).remove_from_organisation(organisation, address)
    except E.LedgerError as exc:
        fail_error(exc)
    if not removed:
        fail(f"{address} was not recorded for {organisation!r}")
    say(f"{address} no longer acts for {organisation.strip()!r}")


def org_list(db: Db = None, as_json: AsJson = False) -> None:
    """Every organisation and the accounts that act for it."""
    try:
        orgs = _preferences(db).organisations()
    except E.LedgerError as exc:
        fail_error(exc)
    if as_json:
        typer.echo(json.dumps(orgs))
        return
    for name, members in orgs.items():
        say(f"{name}: {', '.join(members)}")
