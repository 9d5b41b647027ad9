"""The HTTP face of the ledger (FastAPI). Thin: parse, authorise, call ledger use cases,
render. Business rules live in ledger/; the routers in api/routers/ (one per resource) only
decide who may see what, and this module only wires them.

Who may see what (docs/api.md has the full matrix):
- a member sees their own balances, history and requests, never another member's;
- a shop is a member for this purpose: payments to it are its own history;
- anyone else reading a member's data names a purpose (`Ayni-Purpose` header): a declared
  essential purpose for their role (a treasurer's `reconciliation` or an auditor's `audit` sees
  the log and balances, never a memo) or the member's own grant; every such read goes to the member's access log
  (ledger/privacy, docs/privacy.md);
- anyone may post a signed action: the EIP-712 signature is the authorisation.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field

from fastapi import FastAPI

from ledger.exchange import Exchange, load_config
from ledger.privacy.access import Access
from ledger.privacy.grants import Preferences
from ledger.privacy.policy import load_policy
from ledger.queries import Queries
from ledger.ratelimit import RateLimits, SQLCounterStorage
from ledger.requests import PaymentRequests
from ledger.shops import Shops
from ledger.service import Ledger
from ledger.sessions import Sessions

from . import errors
from .auth import SiweAuth, load_or_create_secret
from .context import Context
from .metrics import LimitsAndMetrics, Metrics
from .routers import accounts, audit, community, exchange, federation, privacy, requests, service, transfers
from .routers import shops  # docs/shops.md
from .schemas import Error
from .webapp import mount_web_app

MAX_BODY = 64 * 1024

# Per window, counted in the database so every worker shares them (docs/api.md, "Rate limits").
# Generous: a person, or a shop till signing in for every sale, never meets them (the wallet
# signs in on every command); a script flooding one endpoint does. No limit is per *account
# address* asked for: anyone could exhaust that one for someone else and lock them out.
RATE_LIMITS = {
    "challenge_per_client": "300/minute",   # POST /v1/auth/challenge, per client address
    "token_per_client": "300/minute",       # POST /v1/auth/token, per client address
    "request_per_client": "600/minute",     # POST /v1/requests, per client address
    "request_per_payee": "120/minute",      # ... per signed-in payee (a till: 2 a second)
    "proposal_per_client": "30/minute",     # POST /v1/federation/alliances/proposals, per client address
    "acceptance_per_client": "30/minute",   # POST /v1/federation/alliances/acceptances, per client address
    # POST /v1/federation/messages, per client address: requests, not messages (a batch is one).
    # A peer node sends at most 2 batches in flight plus its driver's re-sends: far below this
    # even when it re-sends hundreds of payments after an outage (docs/federation-operations.md).
    "node_messages_per_client": "30000/minute",
    "listing_per_member": "10/day",         # POST /v1/listings, per signed-in member (docs/exchange.md)
    "board_message_per_member": "300/hour",  # answers and messages on the exchange board, per member
    "arrangement_per_member": "100/hour",   # arrangement proposals on the exchange board, per member
    "checkout_per_member": "120/minute",    # POST /v1/shops/{shop}/checkouts, per signed-in customer
    "refund_per_shop": "120/minute",        # POST /v1/transfers/{seq}/refunds, per signed-in shop
}
RATE_LIMIT_WHAT = {
    "challenge_per_client": "sign-in challenges from this client",
    "token_per_client": "sign-in attempts from this client",
    "request_per_client": "payment requests from this client",
    "request_per_payee": "payment requests by this payee",
    "proposal_per_client": "alliance proposals from this client",
    "acceptance_per_client": "alliance acceptances from this client",
    "node_messages_per_client": "node message requests from this client",
    "listing_per_member": "new listings by this member",
    "board_message_per_member": "board messages by this member",
    "arrangement_per_member": "arrangement proposals by this member",
    "checkout_per_member": "checkouts by this customer",
    "refund_per_shop": "refunds prepared by this shop",
}


@dataclass
class Settings:
    db_url: str | None = None
    public_host: str = "127.0.0.1:8000"       # SIWE domain
    public_uri: str = "http://127.0.0.1:8000"  # SIWE URI
    secret_file: str = "ayni-data/session.key"
    anchor_contract: str | None = None
    stats_k: int = 5                # smallest group /v1/stats releases (>= the policy's minimum)
    data_policy: str | None = None  # a cooperative's own policy file (default: the shipped one)
    rate_limits: dict[str, str] = field(default_factory=dict)  # overrides of RATE_LIMITS ("off" disables)
    exchange_config: str | None = None  # the board's categories and areas (default: $AYNI_EXCHANGE_CONFIG, shipped)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(db_url=os.environ.get("AYNI_DB_URL"),
                   public_host=os.environ.get("AYNI_PUBLIC_HOST", "127.0.0.1:8000"),
                   public_uri=os.environ.get("AYNI_PUBLIC_URI", "http://127.0.0.1:8000"),
                   secret_file=os.environ.get("AYNI_SESSION_KEY_FILE", "ayni-data/session.key"),
                   anchor_contract=os.environ.get("AYNI_ANCHOR_CONTRACT") or None,
                   stats_k=int(os.environ.get("AYNI_STATS_K", "5")),
                   data_policy=os.environ.get("AYNI_DATA_POLICY") or None,
                   rate_limits={name: os.environ[f"AYNI_LIMIT_{name.upper()}"] for name in RATE_LIMITS
                                if f"AYNI_LIMIT_{name.upper()}" in os.environ},
                   exchange_config=os.environ.get("AYNI_EXCHANGE_CONFIG") or None)


ERROR_RESPONSES = {status: {"model": Error, "description": text} for status, text in (
    (400, "malformed input"), (401, "not signed in, or the token is invalid or expired"),
    (403, "not yours, not a treasurer, or not signed by the payer"), (404, "no such thing"),
    (409, "conflicts with what is recorded (e.g. nonce reused)"), (413, "body larger than 64 KiB"),
    (422, "well-formed but refused by the rules, or not matching the schema"),
    (429, "too many requests from this client (or payee): wait `Retry-After` seconds"),
    (500, "a fault of the server (e.g. integrity_violation: stored data contradicts the log)"),
    (503, "the database or the ledger writer is unavailable"))}

# in this order: the web app is mounted last so every API route takes precedence
ROUTERS = (service.router, community.community_router, community.auth_router, transfers.router,
           accounts.router, audit.router, audit.anchoring_router, requests.router, privacy.router,
           federation.router, exchange.router, shops.router)


def build_context(ledger: Ledger, settings: Settings) -> Context:
    policy = load_policy(settings.data_policy)
    if settings.stats_k < policy.statistics.minimumGroupSize:
        raise ValueError(f"stats_k {settings.stats_k} is below the policy's minimum group size "
                         f"{policy.statistics.minimumGroupSize}")
    unknown = set(settings.rate_limits) - set(RATE_LIMITS)
    if unknown:
        raise ValueError(f"unknown rate limits {sorted(unknown)}; known: {sorted(RATE_LIMITS)}")
    prefs = Preferences(ledger, policy)
    secret = load_or_create_secret(settings.secret_file)
    auth = SiweAuth(ledger, domain=settings.public_host, uri=settings.public_uri, secret=secret,
                    sessions=Sessions(ledger))
    limits = RateLimits(SQLCounterStorage(ledger.engine), {**RATE_LIMITS, **settings.rate_limits}, RATE_LIMIT_WHAT,
                        client_key=hmac.new(secret, b"ayni-rate-limit-client", hashlib.sha256).digest())
    ctx = Context(ledger=ledger, settings=settings, policy=policy, prefs=prefs,
                  access=Access(ledger, policy, prefs), auth=auth, metrics=Metrics(), queries=Queries(ledger),
                  limits=limits)
    ctx.requests = PaymentRequests(ledger, submit=lambda sub: ctx.committer().submit(sub))
    return ctx


def create_app(ledger: Ledger, settings: Settings | None = None, federation=None) -> FastAPI:
    """`federation`: a ledger.federation.runtime.Federation when this node has a node key."""
    settings = settings or Settings()
    ctx = build_context(ledger, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        ctx.close_committer()  # flush and stop the writer; a restart makes a new one

    app = FastAPI(lifespan=lifespan, responses=ERROR_RESPONSES, docs_url=None, redoc_url=None, title="Ayni",
                  version="1", description="Mutual-credit ledger for platform cooperatives. "
                  "Errors: {\"error\": {\"code\", \"message\"}}. Sign in with Ethereum (EIP-4361), then send "
                  "`Authorization: Bearer <token>`.")
    app.state.ctx = ctx
    app.state.federation = federation
    app.state.exchange = Exchange(ledger, config=load_config(settings.exchange_config), requests=ctx.requests,
                                  shuffle_secret=hmac.new(load_or_create_secret(settings.secret_file),
                                                          b"ayni-exchange-shuffle", hashlib.sha256).digest())
    app.state.shops = Shops(ledger, ctx.requests, ctx.access)
    errors.install(app)
    too_large = json.dumps(errors.error_body("payload_too_large", f"bodies are limited to {MAX_BODY} bytes")).encode()
    batch_too_large = json.dumps(errors.error_body(
        "payload_too_large", f"a transfer batch body is limited to {transfers.MAX_BATCH_BODY} bytes "
        f"(at most {transfers.MAX_BATCH} transfers)")).encode()
    app.add_middleware(LimitsAndMetrics, metrics=ctx.metrics, max_body=MAX_BODY, too_large=too_large,
                       by_path={"/v1/transfers/batch": (transfers.MAX_BATCH_BODY, batch_too_large)})
    for router in ROUTERS:
        app.include_router(router)
    mount_web_app(app)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each worker process builds its own app)."""
    from ledger.federation.runtime import federation_from_env
    settings = Settings.from_env()
    ledger = Ledger.open(settings.db_url, migrate=False, fork_guard=True)
    return create_app(ledger, settings, federation=federation_from_env(ledger))
