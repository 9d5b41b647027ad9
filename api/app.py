"""The HTTP face of the ledger (FastAPI). Thin: parse, authorise, call ledger use cases,
render. Business rules live in ledger/; this module only decides who may see what.

Who may see what (docs/api.md has the full matrix):
- a member sees their own balances, history and requests, never another member's;
- a shop is a member for this purpose: payments to it are its own history;
- a treasurer sees the log and every account's balances and history, never a memo;
- anyone may post a signed action: the EIP-712 signature is the authorisation.
"""
from __future__ import annotations

import contextlib
import json
import os

from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from ledger.core import errors as E
from ledger.core.addresses import normalize_address
from ledger.core.typed_data import EIP712_TYPES, OpenAccount, SetLimit, SetStatus, Transfer
from ledger.group_commit import GroupCommitter
from ledger.service import Ledger, Posted, Submission

from . import errors
from .metrics import LimitsAndMetrics, Metrics
from .schemas import AdminAction, ChallengeIn, Error, PostTransfer, RequestIn, TokenIn

MAX_BODY = 64 * 1024


@dataclass
class Settings:
    db_url: str | None = None
    public_host: str = "127.0.0.1:8000"       # SIWE domain
    public_uri: str = "http://127.0.0.1:8000"  # SIWE URI
    secret_file: str = "ayni-data/session.key"
    anchor_contract: str | None = None

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(db_url=os.environ.get("AYNI_DB_URL"),
                   public_host=os.environ.get("AYNI_PUBLIC_HOST", "127.0.0.1:8000"),
                   public_uri=os.environ.get("AYNI_PUBLIC_URI", "http://127.0.0.1:8000"),
                   secret_file=os.environ.get("AYNI_SESSION_KEY_FILE", "ayni-data/session.key"),
                   anchor_contract=os.environ.get("AYNI_ANCHOR_CONTRACT") or None)


def _decimal(n: int) -> str:
    return str(n)


def create_app(ledger: Ledger, settings: Settings | None = None) -> FastAPI:
    from .auth import SiweAuth, load_or_create_secret
    from ledger.queries import Queries
    from ledger.requests import PaymentRequests

    settings = settings or Settings()
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

    app = FastAPI(lifespan=lifespan, responses=error_responses, title="Ayni", version="1", description="Mutual-credit ledger for platform cooperatives. "
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

    def may_read_account(p, address: str) -> None:
        if p.address != address and p.role != "treasurer":
            raise E.LedgerError("you may only read your own account", code="forbidden")

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
    def account(address: str, p=Depends(signed_in)):
        address = account_address(address)
        may_read_account(p, address)
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

    def _transfer_view(v, p) -> dict:
        out = {"seq": v.seq, "at": v.at, "payer": v.payer, "payee": v.payee, "currency": v.currency,
               "amount": v.amount, "requestId": v.request_id, "digest": v.digest}
        if p.address in (v.payer, v.payee):
            out["memo"] = v.memo  # memos are for the two parties only, never the treasurer
            out["direction"] = "out" if p.address == v.payer else "in"
        return out

    @app.get("/v1/transfers/{seq}", tags=["transfers"])
    def get_transfer(seq: int, p=Depends(signed_in)):
        v = queries.transfer(seq)
        if v is None:
            raise E.LedgerError(f"there is no transfer {seq}", code="not_found")
        if p.address not in (v.payer, v.payee) and p.role != "treasurer":
            raise E.LedgerError("only the payer, the payee and treasurers may read a transfer", code="forbidden")
        return _transfer_view(v, p)

    @app.get("/v1/accounts/{address}/history", tags=["transfers"])
    def history(address: str, p=Depends(signed_in), currency: str | None = None, counterparty: str | None = None,
                since: int | None = Query(None, description="unix ms, inclusive"),
                until: int | None = Query(None, description="unix ms, exclusive"),
                limit: int = Query(50, ge=1, le=500), cursor: str | None = None):
        address = account_address(address)
        may_read_account(p, address)
        if counterparty is not None:
            counterparty = normalize_address(counterparty, what="counterparty")
        items, nxt = queries.history(address, currency=currency, counterparty=counterparty, since_ms=since,
                                     until_ms=until, limit=limit, cursor=cursor)
        return {"items": [_transfer_view(v, p) for v in items], "nextCursor": nxt}

    @app.get("/v1/log", tags=["audit"])
    def log(p=Depends(signed_in), after: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)):
        if p.role != "treasurer":
            raise E.LedgerError("the entry log is for treasurers", code="forbidden")
        entries, nxt = queries.log(after_seq=after, limit=limit)
        return {"entries": [e.as_dict() for e in entries], "nextAfter": nxt}

    @app.get("/v1/balances", tags=["audit"])
    def balance_sheet(p=Depends(signed_in)):
        """Every account's balances and limits as of `headSeq` (one snapshot): what a treasurer
        reconciles against an independent replay of the log up to that seq."""
        if p.role != "treasurer":
            raise E.LedgerError("the balance sheet is for treasurers", code="forbidden")
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
    def receipt(seq: int, p=Depends(signed_in)):
        """The receipt a member keeps: checkable with `ayni-wallet verify` and any node of the chain."""
        job = anchoring()
        v = queries.transfer(seq)
        if p.role != "treasurer" and (v is None or p.address not in (v.payer, v.payee)):
            raise E.LedgerError("receipts are for the payer, the payee and treasurers", code="forbidden")
        return job.receipt(seq)

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

    mount_web_app(app)
    return app


WEB_DIR = Path(__file__).parent / "web"


def mount_web_app(app: FastAPI) -> None:
    """The member web app (static files built once, shipped in the package) at `/`.
    Mounted last so every API route above takes precedence."""
    if (WEB_DIR / "index.html").is_file():
        from fastapi.staticfiles import StaticFiles
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each worker process builds its own app)."""
    settings = Settings.from_env()
    return create_app(Ledger.open(settings.db_url, migrate=False), settings)
