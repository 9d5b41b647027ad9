"""Values read back from the database are checked before anything acts on them.

The database holds only what the service wrote, so a value outside that (a role or status no
rule ever sets, an entry body that is not the JSON object it was written as) means the stored
state was damaged or edited. That is IntegrityViolation (HTTP 500, logged for the operator),
never a client's fault (a 403 "account is weird") and never acted upon (a sign-in token for
role 'xx'). `ayni verify` then says exactly what differs from the log."""
from __future__ import annotations

import json

from ..core.errors import IntegrityViolation
from ..core.rules import AccountState
from ..core.vocab import ROLES, STATUSES


def account_state(address: str, role: str, status: str) -> AccountState:
    if role not in ROLES or status not in STATUSES:
        raise IntegrityViolation(f"account {address} is stored with role {role!r} and status {status!r}, "
                                 "which no entry can set: the database was altered (run `ayni verify`)")
    return AccountState(address, role, status)


def entry_body(seq: int, text) -> dict:
    """The body of entry `seq` as stored (canonical JSON of an object)."""
    try:
        body = json.loads(text)
    except (TypeError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise IntegrityViolation(f"entry {seq}'s stored body is not a JSON object: the database was "
                                 "altered (run `ayni verify`)")
    return body
