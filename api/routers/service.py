"""Service health and metrics: liveness, readiness (database reachable, migrations current)."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from ..context import Context
from ..deps import context

router = APIRouter(tags=["service"])


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
    return {"status": "ready", "headSeq": ctx.ledger.head()[0]}


@router.get("/metrics", response_class=PlainTextResponse)
def metrics_text(ctx: Context = Depends(context)):
    return PlainTextResponse(ctx.metrics.render(ctx), media_type="text/plain; version=0.0.4")
