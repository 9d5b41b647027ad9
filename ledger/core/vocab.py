"""The ledger's words: entry kinds, account roles and statuses.

`StrEnum`s, so each member *is* the string stored in entries, signed in typed data and
served as JSON ("transfer.posted" == Kind.TRANSFER_POSTED): naming them changes no byte
of any stable contract, and a typo becomes an AttributeError instead of a silent miss."""
from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """What an entry records. Each has one record type and one rule (ledger.core.fold)."""

    COMMUNITY_CREATED = "community.created"
    ACCOUNT_OPENED = "account.opened"
    LIMIT_SET = "limit.set"
    ACCOUNT_STATUS = "account.status"
    TRANSFER_POSTED = "transfer.posted"
    # federation (docs/federation.md): an alliance with another community and the legs of
    # remote payments; each entry carries what the other node and the payer signed
    ALLIANCE_RECORDED = "alliance.recorded"
    ALLIANCE_STATUS = "alliance.status"
    REMOTE_PREPARED = "remote.prepared"
    REMOTE_COMMITTED = "remote.committed"
    REMOTE_ABORTED = "remote.aborted"


class Role(StrEnum):
    MEMBER = "member"
    SHOP = "shop"
    TREASURER = "treasurer"  # signs account administration
    SYSTEM = "system"
    AUDITOR = "auditor"  # reads the books, holds no money
    PEER = "peer"  # stands for an allied community; opened only by alliance.recorded, moved only by remote legs


class Status(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"  # keeps its balances, may neither pay nor be paid
    CLOSED = "closed"  # final; only with every balance at zero


KINDS = tuple(k.value for k in Kind)
ROLES = tuple(r.value for r in Role)
STATUSES = tuple(s.value for s in Status)
