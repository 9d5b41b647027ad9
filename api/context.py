"""What every router needs, built once per app by `create_app`: the ledger and its use cases,
the sign-in service, the data policy, metrics and the group-commit writer. Routers reach it
through the FastAPI dependencies of api/deps.py, never through globals."""
from __future__ import annotations

from dataclasses import dataclass, field

from ledger.group_commit import GroupCommitter
from ledger.privacy.access import Access
from ledger.privacy.grants import Preferences
from ledger.privacy.policy import Policy
from ledger.queries import Queries
from ledger.ratelimit import RateLimits
from ledger.requests import PaymentRequests
from ledger.service import Ledger

from .auth import SiweAuth
from .metrics import Metrics


@dataclass
class Context:
    ledger: Ledger
    settings: object  # api.app.Settings (kept untyped here: app.py imports this module)
    policy: Policy
    prefs: Preferences
    access: Access
    auth: SiweAuth
    metrics: Metrics
    queries: Queries
    limits: RateLimits
    requests: PaymentRequests | None = None
    _committer: GroupCommitter | None = field(default=None, repr=False)

    def committer(self) -> GroupCommitter:
        """The one writer of this app (made on first use, closed by the app's lifespan; a
        restarted lifespan makes a new one)."""
        if self._committer is None:
            self._committer = GroupCommitter(self.ledger)
        return self._committer

    def close_committer(self) -> None:
        writer, self._committer = self._committer, None
        if writer is not None:
            writer.close()
