"""Every error as JSON `{"error": {"code", "message"}}`: a client fault with the right 4xx, a
server fault with 5xx.

The code is the ledger's own (ledger.core.errors), so a client branches on the same
strings whether it talks to the API, reads a CLI's --json, or replays the log.
`integrity_violation` means the stored data contradicts the log: the server's fault, never the
client's, so it is a 500 (with its code, so an operator can grep for it) and logged as an error."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.core.errors import LedgerError, RateLimited, StoreConnectionLost

STATUS = {
    # malformed input
    "invalid_input": 400, "invalid_amount": 400, "invalid_address": 400, "bad_signature": 400,
    "memo_mismatch": 400,
    # who you are / what you may do
    "unauthenticated": 401, "forbidden": 403, "not_authorised": 403, "wrong_signer": 403,
    "purpose_required": 403, "purpose_not_allowed": 403,
    # what does not exist
    "unknown_account": 404, "unknown_entry": 404, "unknown_request": 404, "not_found": 404,
    "not_anchored": 404, "unknown_alliance": 404, "unknown_payment": 404,
    "wrong_node_signature": 403,
    # conflicts with what is already recorded
    "nonce_reused": 409, "account_exists": 409, "already_initialised": 409, "invalid_transition": 409,
    "request_not_open": 409, "request_already_paid": 409, "write_conflict": 409,
    "payment_already_decided": 409, "stale_node_message": 409, "proposal_conflict": 409,
    # well-formed, but the rules refuse it
    "credit_limit_exceeded": 422, "ceiling_exceeded": 422, "same_payer_payee": 422,
    "unknown_currency": 422, "account_not_active": 422, "expired": 422, "balance_overflow": 422,
    "request_expired": 422, "request_mismatch": 422,
    "alliance_not_active": 422, "rate_mismatch": 422, "peer_limit_reached": 422,
    "payload_too_large": 413, "rate_limited": 429, "too_many_proposals": 429,
    "alliance_not_ended": 409, "payments_in_flight": 409,
    # the peer node did not answer in time (a payment presumed aborted)
    "timeout": 504,
    # the exchange board (docs/exchange.md): not there, or not yours to see
    "unknown_listing": 404, "unknown_conversation": 404, "unknown_arrangement": 404,
    # shops (docs/shops.md): refunds are checked by the fold at posting
    "refund_exceeds_remaining": 409, "not_refundable": 409, "refund_mismatch": 422,
    # the server's own faults
    "integrity_violation": 500, "insecure_storage": 500, "not_initialised": 503, "unavailable": 503,
}
log = logging.getLogger("ayni.api")


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def status_for(code: str) -> int:
    return STATUS.get(code, 400)


def install(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def _ledger(request: Request, exc: LedgerError):
        status = status_for(exc.code)
        if status >= 500:
            log.error("%s %s: %s: %s", request.method, request.url.path, exc.code, exc.message)
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
        if isinstance(exc, StoreConnectionLost):  # a failover: retry the same request shortly
            headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse(error_body(exc.code, exc.message), status_code=status, headers=headers)

    from ledger.faults import as_ledger_error, storage_fault_types

    async def _database(request: Request, exc: Exception):
        # A database error a path did not translate itself (sign-in, sessions, rate limits, metrics
        # during a failover): the same 503 + Retry-After as the ledger's own, never a 500.
        mapped = as_ledger_error(exc) or StoreConnectionLost(f"database error: {type(exc).__name__}")
        return await _ledger(request, mapped)

    for kind in storage_fault_types():
        app.add_exception_handler(kind, _database)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            msg = str(e.get("msg")).removeprefix("Value error, ")  # our validators' own sentences
            parts.append(f"{where}: {msg}" if where else msg)
        return JSONResponse(error_body("invalid_input", "; ".join(parts) or "invalid request"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        code = {400: "invalid_input", 404: "not_found", 405: "method_not_allowed",
                401: "unauthenticated"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # a bug: say so without leaking internals
        mapped = as_ledger_error(exc)  # a database error wrapped in something else: still a 503
        if mapped is not None:
            return await _ledger(request, mapped)
        log.error("%s %s: internal_error", request.method, request.url.path, exc_info=exc)
        # not "nothing was acknowledged": a fault after a COMMIT was sent cannot know that
        return JSONResponse(error_body("internal_error", "the server failed; a signed action may be "
                                       "retried as it is (a retry never posts twice)"), status_code=500)


def validation_message(errs) -> str:
    """pydantic errors as one sentence, as the RequestValidationError handler words them (used
    where one item of a batch is validated on its own, e.g. POST /v1/transfers/batch)."""
    parts = []
    for e in list(errs)[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        msg = str(e.get("msg")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request"
