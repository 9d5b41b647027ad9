"""The ledger as a pure state machine over entries: the names posting and replay use.

The fold itself (records, one rule per kind, findings) is ledger.core.fold; replaying the
log from seq 1 through it proves the stored balances were earned by valid, signed
entries (invariants 2 and 3 of docs/ledger-model.md)."""
from __future__ import annotations

from . import errors as E
from .fold import KIND_OF, LedgerState, action_body, decode, replay, zero_sum_faults
from .records import Genesis, RoleDefault, Signed
from .typed_data import Action


def action_from_body(kind: str, body: dict) -> tuple[Action, str, str]:
    """(action, claimed signer, signature) from a stored body; malformed bodies raise InvalidInput."""
    record = decode(kind, body)
    if not isinstance(record, Signed):
        raise E.InvalidInput(f"entry kind {kind!r} carries no signed action")
    return record.action, record.signer, record.signature


__all__ = ["Genesis", "RoleDefault", "LedgerState", "KIND_OF", "action_body", "action_from_body",
           "replay", "zero_sum_faults"]
