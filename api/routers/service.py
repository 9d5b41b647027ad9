"""Service health and metrics: liveness, readiness (database reachable, migrations current)."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from ..context import Context
from ..deps import context

router = APIRouter(tags=["service"])
# A COMMIT waiting longer than this for the synchronous standby makes /readyz answer 503. A
# healthy standby answers in milliseconds; a few seconds means it is gone (docs/high-availability.md).
SYNCREP_STALL_S = 5.0


@router.get("/healthz")
def healthz():
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: Context = Depends(context)):
    try:
        current = ctx.ledger.schema_is_current()
    except Exception as exc:  # noqa: BLE001 - any database failure means not ready
        return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
    if not current:
        return JSONResponse({"status": "unavailable", "reason": "migrations not current"}, status_code=503)
    try:
        head = ctx.ledger.head()[0]  # also the fork guard: a log behind what this process saw is 503
        server = ctx.ledger.server_info()
    except Exception as exc:  # noqa: BLE001
        return JSONResponse({"status": "unavailable", "reason": getattr(exc, "message", type(exc).__name__)},
                            status_code=503)
    body = {"status": "ready", "headSeq": head, **({"server": server} if server else {})}
    if server.get("oldestStandbyWaitS", 0) > SYNCREP_STALL_S:
        # a COMMIT waiting this long for a synchronous standby: payments hang (a dead standby, or a
        # promoted node still naming one). Not ready, so a load balancer or an operator sees it.
        return JSONResponse({**body, "status": "unavailable",
                             "reason": f"{server['commitsWaitingForStandby']} commit(s) waiting for the "
                                       f"synchronous standby for {server['oldestStandbyWaitS']} s"},
                            status_code=503)
    return body


@router.get("/metrics", response_class=PlainTextResponse)
def metrics_text(ctx: Context = Depends(context)):
    return PlainTextResponse(ctx.metrics.render(ctx), media_type="text/plain; version=0.0.4")
