"""The HTTP face of the ledger (FastAPI). Thin: parse, authorise, call ledger use cases,
render. Business rules live in ledger/; this module only decides who may see what.

Who may see what (docs/api.md has the full matrix):
- a member sees their own balances, history and requests, never another member's;
- a shop is a member for this purpose: payments to it are its own history;
- anyone else reading a member's data names a purpose (`Ayni-Purpose` header): a declared
  essential purpose for their role (a treasurer's `reconciliation` sees the log and balances,
  never a memo) or the member's own grant; every such read goes to the member's access log
  (ledger/privacy, docs/privacy.md);
- anyone may post a signed action: the EIP-712 signature is the authorisation.
"""
from __future__ import annotations

import contextlib
import json
import os

from dataclasses import dataclass
from pathlib import Path

from fastapi import Body, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from ledger.core import errors as E
from ledger.core.addresses import normalize_address
from ledger.core.typed_data import EIP712_TYPES, OpenAccount, SetLimit, SetStatus, Transfer
from ledger.group_commit import GroupCommitter
from ledger.service import Ledger, Posted, Submission

from . import errors
from .metrics import LimitsAndMetrics, Metrics
from .schemas import (AdminAction, ChallengeIn, ErasureIn, Error, GrantIn, PostTransfer, ProfileIn, RequestIn,
                      TokenIn)

MAX_BODY = 64 * 1024


@dataclass
class Settings:
    db_url: str | None = None
    public_host: str = "127.0.0.1:8000"       # SIWE domain
    public_uri: str = "http://127.0.0.1:8000"  # SIWE URI
    secret_file: str = "ayni-data/session.key"
    anchor_contract: str | None = None
    stats_k: int = 5                # smallest group /v1/stats releases (>= the policy's minimum)
    data_policy: str | None = None  # a cooperative's own policy file (default: the shipped one)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(db_url=os.environ.get("AYNI_DB_URL"),
                   public_host=os.environ.get("AYNI_PUBLIC_HOST", "127.0.0.1:8000"),
                   public_uri=os.environ.get("AYNI_PUBLIC_URI", "http://127.0.0.1:8000"),
                   secret_file=os.environ.get("AYNI_SESSION_KEY_FILE", "ayni-data/session.key"),
                   anchor_contract=os.environ.get("AYNI_ANCHOR_CONTRACT") or None,
                   stats_k=int(os.environ.get("AYNI_STATS_K", "5")),
                   data_policy=os.environ.get("AYNI_DATA_POLICY") or None)


def _decimal(n: int) -> str:
    return str(n)


def create_app(ledger: Ledger, settings: Settings | None = None) -> FastAPI:
    from .auth import SiweAuth, load_or_create_secret
    from ledger.queries import Queries
    from ledger.requests import PaymentRequests
    from ledger.privacy.access import ALL, Access, Reader
    from ledger.privacy.grants import Preferences
    from ledger.privacy.policy import load_policy

    settings = settings or Settings()
    policy = load_policy(settings.data_policy)
    if settings.stats_k < policy.statistics.minimumGroupSize:
        raise ValueError(f"stats_k {settings.stats_k} is below the policy's minimum group size "
                         f"{policy.statistics.minimumGroupSize}")
    prefs = Preferences(ledger, policy)
    access = Access(ledger, policy, prefs)
    Path(settings.secret_file).parent.mkdir(parents=True, exist_ok=True)
    auth = SiweAuth(ledger, domain=settings.public_host, uri=settings.public_uri,
                    secret=load_or_create_secret(settings.secret_file))
    metrics = Metrics()
    state: dict = {}
    queries = Queries(ledger)
    requests = PaymentRequests(ledger, submit=lambda sub: committer().submit(sub))

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        writer = state.pop("committer", None)  # flush and stop the writer; a restart makes a new one
        if writer is not None:
            writer.close()

    error_responses = {status: {"model": Error, "description": text} for status, text in (
        (400, "malformed input"), (401, "not signed in, or the token is invalid or expired"),
        (403, "not yours, not a treasurer, or not signed by the payer"), (404, "no such thing"),
        (409, "conflicts with what is recorded (e.g. nonce reused)"), (413, "body larger than 64 KiB"),
        (422, "well-formed but refused by the rules, or not matching the schema"),
        (503, "the database or the ledger writer is unavailable"))}
    duplicate = {200: {"description": "an idempotent retry: the original result, `duplicate: true`"}}

    app = FastAPI(lifespan=lifespan, responses=error_responses, docs_url=None, redoc_url=None, title="Ayni", version="1", description="Mutual-credit ledger for platform cooperatives. "
                  "Errors: {\"error\": {\"code\", \"message\"}}. Sign in with Ethereum (EIP-4361), then send "
                  "`Authorization: Bearer <token>`.")
    errors.install(app)

    def committer() -> GroupCommitter:
        if "committer" not in state:
            state["committer"] = GroupCommitter(ledger)
        return state["committer"]

    too_large = json.dumps(errors.error_body("payload_too_large", f"bodies are limited to {MAX_BODY} bytes")).encode()
    app.add_middleware(LimitsAndMetrics, metrics=metrics, max_body=MAX_BODY, too_large=too_large)

    # -- who is asking ---------------------------------------------------------------
    def principal(request: Request):
        header = request.headers.get("authorization", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise E.LedgerError("use `Authorization: Bearer <token>`", code="unauthenticated")
        return auth.authenticate(token.strip())

    def signed_in(request: Request):
        p = principal(request)
        if p is None:
            raise E.LedgerError("sign in first: POST /v1/auth/challenge, then /v1/auth/token",
                                code="unauthenticated")
        return p

    def asked_purpose(
            ayni_purpose: str | None = Header(None, alias="Ayni-Purpose", max_length=64, description=(
                "why you read another member's data: a purpose id of GET /v1/data-policy "
                "(not needed for your own data)")),
            purpose: str | None = Query(None, max_length=64, description="same as the Ayni-Purpose header")):
        return ayni_purpose or purpose

    def guard(p, subjects: list[str], need: tuple[str, ...], purpose, resource: str, want=(),
              whose: str = "this member") -> set[str] | None:
        """None: the reader's own data. Else the categories they may see (the read is logged)."""
        return access.authorise(Reader(p.address, p.role), subjects, need, purpose, resource, want, whose)

    def only_self(p, address: str, what: str) -> None:
        if p.address != address:
            raise E.LedgerError(f"only the member may {what}", code="forbidden")

    def account_address(address: str) -> str:
        return normalize_address(address, what="account")

    # -- service health ----------------------------------------------------------------
    @app.get("/healthz", tags=["service"])
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"])
    def readyz():
        from ledger.store.migrate import is_current
        try:
            current = is_current(ledger.engine)
        except Exception as exc:  # noqa: BLE001 - any database failure means not ready
            return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
        if not current:
            return JSONResponse({"status": "unavailable", "reason": "migrations not current"}, status_code=503)
        return {"status": "ready", "headSeq": ledger.head()[0]}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    def metrics_text():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    # -- community -----------------------------------------------------------------------
    @app.get("/v1/community", tags=["community"])
    def community():
        g = ledger.genesis
        return {
            "community": g.community,
            "domain": {**g.domain.as_eip712(), "chainId": _decimal(g.domain.chain_id)},
            "types": EIP712_TYPES,
            "currencies": [{**c.as_dict(), "minorUnit": c.minor_unit, "scale": c.scale} for c in g.currencies],
            "anchor": {"chainId": _decimal(g.domain.chain_id), "contract": settings.anchor_contract}
            if settings.anchor_contract else None,
        }

    # -- sign-in -------------------------------------------------------------------------
    @app.post("/v1/auth/challenge", tags=["auth"])
    def challenge(body: ChallengeIn):
        return auth.challenge(body.address)

    @app.post("/v1/auth/token", tags=["auth"])
    def token(body: TokenIn):
        return auth.sign_in(body.message, body.signature)

    # -- posting -------------------------------------------------------------------------
    def _posted(result: Posted) -> JSONResponse:
        body = {"seq": result.seq, "kind": result.kind, "digest": result.digest, "duplicate": result.duplicate}
        return JSONResponse(body, status_code=200 if result.duplicate else 201)

    @app.post("/v1/transfers", tags=["transfers"], status_code=201, responses=duplicate)
    async def post_transfer(body: PostTransfer):
        # async: the signature check runs inline (~0.1 ms) and the request awaits its batch's
        # commit without parking a threadpool thread per request.
        m = body.transfer
        salt = None
        if body.memoSalt is not None:
            from ledger.core.typed_data import _b32
            salt = _b32(body.memoSalt, "memoSalt")
        try:
            t = Transfer.create(payer=m.payer, payee=m.payee, currency=m.currency, amount=m.amount,
                                nonce=m.nonce, valid_until=m.validUntil, memo_hash=m.memoHash,
                                request_id=m.requestId)
            sub = Submission(t, body.signature, body.memo, salt)
            if t.request_id != b"\x00" * 32:
                from starlette.concurrency import run_in_threadpool
                result = await run_in_threadpool(requests.pay, "0x" + t.request_id.hex(), sub)
            else:
                result = await committer().submit_async(sub)
        except E.LedgerError as exc:
            metrics.transfer("refused", exc.code)
            raise
        metrics.transfer("duplicate" if result.duplicate else "posted")
        return _posted(result)

    @app.post("/v1/admin/actions", tags=["accounts"], status_code=201, responses=duplicate)
    def admin_action(body: AdminAction):
        m = body.message
        try:
            common = {"nonce": m["nonce"], "valid_until": m["validUntil"]}
            if body.type == "OpenAccount":
                action = OpenAccount.create(account=m["account"], role=m["role"], **common)
            elif body.type == "SetLimit":
                action = SetLimit.create(account=m["account"], currency=m["currency"],
                                         credit_limit=m["creditLimit"],
                                         ceiling=m["ceiling"] if m.get("hasCeiling") else None, **common)
            else:
                action = SetStatus.create(account=m["account"], status=m["status"], **common)
        except (KeyError, TypeError) as exc:
            raise E.InvalidInput(f"{body.type} message is missing or mistypes {exc}") from None
        return _posted(committer().submit(Submission(action, body.signature)))

    # -- reading ---------------------------------------------------------------------------
    @app.get("/v1/accounts/{address}", tags=["accounts"])
    def account(address: str, p=Depends(signed_in), purpose=Depends(asked_purpose)):
        address = account_address(address)
        guard(p, [address], ("account", "balances"), purpose, "GET /v1/accounts/{address}")
        acct = ledger.account(address)
        if acct is None:
            raise E.UnknownAccount(f"{address} has no account here")
        currencies = ledger.currencies
        balances = []
        for (_, code), pos in sorted(ledger.positions(address).items()):
            cur = currencies[code]
            spendable = pos.balance + pos.credit_limit
            balances.append({"currency": code, "balance": pos.balance, "creditLimit": pos.credit_limit,
                             "ceiling": pos.ceiling, "canSpend": max(0, spendable),
                             "formatted": {"balance": cur.format(pos.balance), "canSpend": cur.format(max(0, spendable))}})
        return {"address": acct.address, "role": acct.role, "status": acct.status, "balances": balances}

    def _transfer_view(v, p, seen: set[str] | None, memo_ok: set[str] | None = None) -> dict:
        """`seen`: categories covered for the subject(s) read (None: the reader's own); `memo_ok`:
        the counterparties who allow this reader memos too (None: no counterparty to check)."""
        out = {"seq": v.seq, "at": v.at, "payer": v.payer, "payee": v.payee, "currency": v.currency,
               "amount": v.amount, "requestId": v.request_id, "digest": v.digest}
        granted = seen is not None and "memos" in seen and (memo_ok is None or {v.payer, v.payee} & memo_ok)
        if p.address in (v.payer, v.payee) or granted:
            out["memo"] = v.memo  # the two parties, or a reader both parties granted memos to
        if p.address in (v.payer, v.payee):
            out["direction"] = "out" if p.address == v.payer else "in"
        return out

    @app.get("/v1/transfers/{seq}", tags=["transfers"])
    def get_transfer(seq: int, p=Depends(signed_in), purpose=Depends(asked_purpose)):
        v = queries.transfer(seq)
        # a reader who could not read it anyway is refused alike whether or not seq is a transfer
        seen = guard(p, [v.payer, v.payee] if v else [], ("entries",), purpose, "GET /v1/transfers/{seq}",
                     want=("memos",), whose="a party of this transfer")
        if v is None:
            raise E.LedgerError(f"there is no transfer {seq}", code="not_found")
        return _transfer_view(v, p, seen)

    @app.get("/v1/accounts/{address}/history", tags=["transfers"])
    def history(address: str, p=Depends(signed_in), purpose=Depends(asked_purpose),
                currency: str | None = None, counterparty: str | None = None,
                since: int | None = Query(None, description="unix ms, inclusive"),
                until: int | None = Query(None, description="unix ms, exclusive"),
                limit: int = Query(50, ge=1, le=500), cursor: str | None = None):
        address = account_address(address)
        seen = guard(p, [address], ("entries",), purpose, "GET /v1/accounts/{address}/history", want=("memos",))
        if counterparty is not None:
            counterparty = normalize_address(counterparty, what="counterparty")
        items, nxt = queries.history(address, currency=currency, counterparty=counterparty, since_ms=since,
                                     until_ms=until, limit=limit, cursor=cursor)
        memo_ok = None
        if seen is not None:  # the page shows each counterparty's transfers too: logged for them
            others = {v.payee if v.payer == address else v.payer for v in items}
            memo_ok = access.counterparties(Reader(p.address, p.role), others, purpose,
                                            "GET /v1/accounts/{address}/history",
                                            want=("memos",) if "memos" in seen else ())
        return {"items": [_transfer_view(v, p, seen, memo_ok) for v in items], "nextCursor": nxt}

    @app.get("/v1/log", tags=["audit"])
    def log(p=Depends(signed_in), purpose=Depends(asked_purpose), after: int = Query(0, ge=0),
            limit: int = Query(100, ge=1, le=1000)):
        """The whole entry log, page by page (treasurers, `Ayni-Purpose: reconciliation`). Each
        page read is one access-log row "all members", which every member can see."""
        guard(p, [ALL], ("entries",), purpose, "GET /v1/log")
        entries, nxt = queries.log(after_seq=after, limit=limit)
        return {"entries": [e.as_dict() for e in entries], "nextAfter": nxt}

    @app.get("/v1/balances", tags=["audit"])
    def balance_sheet(p=Depends(signed_in), purpose=Depends(asked_purpose)):
        """Every account's balances and limits as of `headSeq` (one snapshot): what a treasurer
        reconciles against an independent replay of the log up to that seq
        (`Ayni-Purpose: reconciliation`; one access-log row "all members")."""
        guard(p, [ALL], ("balances",), purpose, "GET /v1/balances")
        seq, chain_hash, positions = ledger.balance_sheet()
        return {"headSeq": seq, "headChainHash": "0x" + chain_hash.hex(), "balances": [
            {"account": a, "currency": c, "balance": pos.balance, "creditLimit": pos.credit_limit,
             "ceiling": pos.ceiling} for (a, c), pos in sorted(positions.items())]}

    # -- anchoring ---------------------------------------------------------------------------
    def anchoring():
        from ledger.anchoring import Anchoring
        if not settings.anchor_contract:
            raise E.LedgerError("this cooperative does not anchor to a chain", code="not_found")
        return Anchoring(ledger, contract=settings.anchor_contract)

    @app.get("/v1/anchors", tags=["anchoring"])
    def anchors(limit: int = Query(100, ge=1, le=1000), after: int = Query(0, ge=0, description="first seq after")):
        """Anchored batches: ranges, roots and transactions only (public, nothing personal)."""
        rows = [b for b in anchoring().batches(include_failed=False) if b["first_seq"] > after][:limit]
        return {"contract": settings.anchor_contract, "batches": [
            {"firstSeq": b["first_seq"], "lastSeq": b["last_seq"], "root": "0x" + bytes(b["root"]).hex(),
             "chainId": str(b["chain_id"]), "status": b["status"], "txHash": b["tx_hash"], "block": b["block"],
             "gasUsed": b["gas_used"]} for b in rows]}

    @app.get("/v1/receipts/{seq}", tags=["anchoring"])
    def receipt(seq: int, p=Depends(signed_in), purpose=Depends(asked_purpose)):
        """The receipt a member keeps: checkable with `ayni-wallet verify` and any node of the chain.
        Others name a purpose (a treasurer: `reconciliation`)."""
        job = anchoring()
        guard(p, entry_subjects(seq), ("entries",), purpose, "GET /v1/receipts/{seq}", whose="a party of this entry")
        return job.receipt(seq)

    def entry_subjects(seq: int) -> list[str]:
        """Whose data the entry at `seq` is: a transfer's two parties, an account entry's
        account (OpenAccount, SetLimit, SetStatus), every member for the community's genesis;
        [] when there is no such entry."""
        v = queries.transfer(seq)
        if v is not None:
            return [v.payer, v.payee]
        if not 1 <= seq <= ledger.head()[0]:
            return []
        entries, _ = queries.log(after_seq=seq - 1, limit=1)
        account = entries[0].body.get("account") if entries and entries[0].seq == seq else None
        return [account] if isinstance(account, str) else [ALL] if entries else []

    # -- payment requests ------------------------------------------------------------------
    def _request_view(r) -> dict:
        return {"id": r.id, "payee": r.payee, "payer": r.payer, "currency": r.currency, "amount": r.amount,
                "memo": r.memo, "createdAt": r.created_at, "expiresAt": r.expires_at, "status": r.status,
                "paidSeq": r.paid_seq}

    @app.post("/v1/requests", tags=["requests"], status_code=201)
    def create_request(body: RequestIn, p=Depends(signed_in)):
        from ledger.core.typed_data import _int_amount
        r = requests.create(payee=p.address, payer=normalize_address(body.payer, what="payer"),
                            currency=body.currency, amount=_int_amount(body.amount), memo=body.memo,
                            expires_in_s=body.expiresInSeconds)
        return JSONResponse(_request_view(r), status_code=201)

    @app.get("/v1/requests", tags=["requests"])
    def list_requests(p=Depends(signed_in), direction: str = Query("incoming", pattern="^(incoming|outgoing)$"),
                      status: str | None = None, limit: int = Query(50, ge=1, le=500), cursor: str | None = None):
        items, nxt = requests.list_for(p.address, direction=direction, status=status, limit=limit, cursor=cursor)
        return {"items": [_request_view(r) for r in items], "nextCursor": nxt}

    @app.get("/v1/requests/{request_id}", tags=["requests"])
    def get_request(request_id: str, p=Depends(signed_in)):
        r = requests.get(request_id)
        if p.address not in (r.payer, r.payee):
            raise E.LedgerError("only the payer and the payee may read a payment request", code="forbidden")
        return _request_view(r)

    @app.post("/v1/requests/{request_id}/decline", tags=["requests"])
    def decline_request(request_id: str, p=Depends(signed_in)):
        return _request_view(requests.decline(request_id, by=p.address))

    # -- data sovereignty (ledger/privacy, docs/privacy.md) --------------------------------
    @app.get("/v1/data-policy", tags=["privacy"])
    def data_policy():
        """Every data item kept: category, purposes, whether essential, who sees it, retention
        (docs/data-policy.schema.json). Public."""
        return policy.as_json()

    @app.get("/v1/accounts/{address}/preferences", tags=["privacy"])
    def get_preferences(address: str, p=Depends(signed_in)):
        """Your data-sharing preference document (docs/preferences.schema.json), portable to
        another cooperative."""
        address = account_address(address)
        only_self(p, address, "read their preferences")
        return prefs.export(address)

    @app.put("/v1/accounts/{address}/preferences", tags=["privacy"])
    def put_preferences(address: str, p=Depends(signed_in), doc: dict = Body(...)):
        """Replace your grants with those of a preference document (e.g. exported elsewhere).
        Grants this cooperative cannot honour are skipped and listed."""
        address = account_address(address)
        only_self(p, address, "change their preferences")
        return prefs.import_(address, doc)

    @app.post("/v1/accounts/{address}/grants", tags=["privacy"], status_code=201)
    def add_grant(address: str, body: GrantIn, p=Depends(signed_in)):
        address = account_address(address)
        only_self(p, address, "grant access to their data")
        return JSONResponse(prefs.grant(address, body.model_dump()).as_json(), status_code=201)

    @app.delete("/v1/accounts/{address}/grants/{grant_id}", tags=["privacy"])
    def revoke_grant(address: str, grant_id: str, p=Depends(signed_in)):
        address = account_address(address)
        only_self(p, address, "revoke their grants")
        prefs.revoke(address, grant_id)
        return {"revoked": grant_id}

    @app.get("/v1/accounts/{address}/access-log", tags=["privacy"])
    def access_log(address: str, p=Depends(signed_in), after: int = Query(0, ge=0, le=2**31 - 1),
                   limit: int = Query(100, ge=1, le=500)):
        """Who read your data, what, for which purpose, on which basis, when (oldest first)."""
        address = account_address(address)
        only_self(p, address, "read their access log")
        rows, nxt = access.log_for(address, after_id=after, limit=limit)
        return {"items": [r.as_json() for r in rows], "nextAfter": nxt}

    @app.get("/v1/accounts/{address}/profile", tags=["privacy"])
    def get_profile(address: str, p=Depends(signed_in), purpose=Depends(asked_purpose)):
        from ledger.privacy import profiles
        address = account_address(address)
        guard(p, [address], ("profile",), purpose, "GET /v1/accounts/{address}/profile")
        return profiles.get(ledger, address)

    @app.put("/v1/accounts/{address}/profile", tags=["privacy"])
    def put_profile(address: str, body: ProfileIn, p=Depends(signed_in)):
        from ledger.privacy import profiles
        address = account_address(address)
        only_self(p, address, "change their profile")
        return profiles.put(ledger, address, display_name=body.displayName, contact=body.contact)

    @app.post("/v1/accounts/{address}/erasure", tags=["privacy"])
    def erase(address: str, body: ErasureIn, p=Depends(signed_in)):
        """Erase your memos (memo and salt; the log keeps only the salted hash, so every
        signature, anchor and receipt still verifies) and/or your profile, now."""
        from ledger.privacy.retention import erase_member
        address = account_address(address)
        only_self(p, address, "ask for erasure of their data")
        done = erase_member(ledger, address, memos=body.memos, profile=body.profile)
        return {"erased": done.as_dict(), **({"warnings": list(done.warnings)} if done.warnings else {})}

    @app.get("/v1/stats", tags=["privacy"])
    def stats(p=Depends(signed_in)):
        """Aggregates for collective bargaining: transfers and amounts per currency, payee role
        and closed month, active members; every group smaller than the cooperative's k, or
        dominated by one party, suppressed. No per-person figure. k is the server's alone (a
        caller's choice of k would let two answers be subtracted)."""
        from ledger.privacy.stats import statistics
        return statistics(ledger, k=settings.stats_k)

    mount_web_app(app)
    return app


WEB_DIR = Path(__file__).parent / "web"
# The keystore lives in this origin's localStorage: only our own script may run, nothing may
# frame the app, and no request leaves for another origin.
WEB_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "camera=(self)",
}
WEB_ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
IMMUTABLE = "public, max-age=31536000, immutable"


def _accepts_gzip(accept_encoding: str) -> bool:
    """Accept-Encoding names gzip (or *) without q=0."""
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            try:
                return not q.startswith("q=") or float(q[2:]) > 0
            except ValueError:
                return False
    return False


def mount_web_app(app: FastAPI) -> None:
    """The member web app (static files built once, shipped in the package) at `/`.
    Mounted last so every API route above takes precedence. Security headers on every file;
    app.js/app.css precompressed (the build writes *.gz) and cached for a year when asked for
    with the current `?v=` content hash (index.html names them so), everything else
    revalidated (`no-cache`) so a new release is picked up at once. (create_app turns off
    /docs and /redoc: Swagger UI loads a floating CDN script onto this origin.)"""
    if not (WEB_DIR / "index.html").is_file():
        return
    import hashlib
    from fastapi.staticfiles import StaticFiles
    from starlette.datastructures import Headers, QueryParams

    versions = {name: hashlib.sha256((WEB_DIR / name).read_bytes()).hexdigest()[:12]
                for name in WEB_ASSETS if (WEB_DIR / name).is_file()}

    class WebApp(StaticFiles):
        async def get_response(self, path: str, scope) -> Response:
            asset = path if path in versions else None
            gz = WEB_DIR / f"{path}.gz" if asset else None
            if gz is not None and gz.is_file() and _accepts_gzip(Headers(scope=scope).get("accept-encoding", "")):
                response = self.file_response(gz, gz.stat(), scope)
                response.headers["content-type"] = WEB_ASSETS[asset]
                if response.status_code == 200:
                    response.headers["content-encoding"] = "gzip"
            else:
                response = await super().get_response(path, scope)
            if asset:
                response.headers["vary"] = "Accept-Encoding"
            fresh = asset and QueryParams(scope.get("query_string", b"").decode("latin-1")).get("v") == versions[asset]
            response.headers["cache-control"] = IMMUTABLE if fresh else "no-cache"
            response.headers.update(WEB_HEADERS)
            return response

    app.mount("/", WebApp(directory=WEB_DIR, html=True), name="web")


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each worker process builds its own app)."""
    settings = Settings.from_env()
    return create_app(Ledger.open(settings.db_url, migrate=False), settings)
