"""Which data-use purpose a reader declares (sent as `Ayni-Purpose`, docs/privacy.md). Pure:
the one rule the wallet follows for every read, so no command chooses on its own.

- Your own data needs no purpose.
- Another member's data needs the purpose the reader chose (`--purpose`): it is never filled
  in for them, because the purpose is what the access log records and the member later reads.
- The whole ledger (log, balance sheet, anchors) is read for the purpose of the reader's role:
  `reconciliation` for a treasurer, `audit` for an auditor (the data policy grants each role
  exactly that purpose for entries, balances and anchors).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from .vocab import Role

LEDGER_READ_PURPOSES = {Role.TREASURER: "reconciliation", Role.AUDITOR: "audit"}
MUST_CHOOSE = object()  # another member's data and no purpose given: the reader must choose one


def purpose_for(*, reader: str | None, subject: str | None, given: str | None = None,
                reader_role: str | None = None) -> str | None | object:
    """The purpose to send: `subject` None means the whole ledger; otherwise the account whose
    data is read. Returns MUST_CHOOSE when the reader has to name a purpose first."""
    if subject is None:
        return given or LEDGER_READ_PURPOSES.get(reader_role or "", "reconciliation")
    if reader is not None and subject.lower() == reader.lower():
        return given
    return given if given else MUST_CHOOSE


def purposes_to_offer(policy: Mapping) -> list[str]:
    """The purposes of a data policy a reader may choose for another member's data: those that
    reach some category of data and are not only the member's own access."""
    purposes: Iterable[Mapping] = policy.get("purposes") or []
    return [p["id"] for p in purposes
            if p.get("categories") and (not p.get("essential") or set(p.get("roles") or []) - {"self"})]


# The exchange board (docs/exchange.md): reading the listings other members published is done
# for this purpose, by members, shops and treasurers alike (the data policy declares it).
EXCHANGE_PURPOSE = "exchange"
