"""Who may see a transfer's memo: the one rule, used by every face that shows transfers.

A memo is personal data of both parties (docs/privacy.md). It is shown to the payer and the
payee; to anyone else only when their read covers the `memos` category for every subject read
(ledger.privacy.access.Access.authorise returns those categories) and, on a page of one
member's history, when the counterparty of that transfer allows it too (Access.counterparties):
one party's grant never shows the other party's words. Treasurers' essential purposes cover no
memos, so a treasurer sees one only through both parties' grants; auditors never do."""
from __future__ import annotations


def is_party(reader: str, payer: str, payee: str) -> bool:
    return reader in (payer, payee)


def memo_visible(reader: str, payer: str, payee: str, seen: set[str] | None,
                 counterparties_allowing: set[str] | None = None) -> bool:
    """`seen`: the categories the read was allowed for its subject(s) (None: the reader's own
    data); `counterparties_allowing`: on a history page, the counterparties who allow this
    reader memos too (None: no counterparty to check, e.g. a single transfer read whose
    authorisation already covered both parties)."""
    if is_party(reader, payer, payee):
        return True
    if seen is None or "memos" not in seen:
        return False
    return counterparties_allowing is None or bool({payer, payee} & counterparties_allowing)


def may_read_request(reader: str, payer: str, payee: str) -> bool:
    """A payment request is read by its two parties only (no purpose opens it to others)."""
    return is_party(reader, payer, payee)


EVERY_MEMBER = "*"  # ledger.privacy.access.ALL: an entry about the community, not one member


def entry_subjects(kind: str, body: dict) -> list[str]:
    """Whose data a log entry is: a transfer's payer and payee, an account entry's account
    (opened, limit set, status changed), a remote leg's payer and payee, every member for anything
    else (the genesis, alliance terms, remote decisions: they name only ids)."""
    if kind == "transfer.posted":
        return [body["payer"], body["payee"]]
    if kind == "remote.prepared":  # a remote payment's leg: its payer here or its payee here
        return [body["transfer"]["payer"], body["transfer"]["payee"]]
    account = body.get("account")
    return [account] if isinstance(account, str) else [EVERY_MEMBER]
