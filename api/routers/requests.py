"""Payment requests: a payee asks, the payer pays (POST /v1/transfers naming it) or declines.
Only the two parties may read one."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from ledger.core import errors as E
from ledger.core.addresses import normalize_address
from ledger.core.typed_data import _int_amount
from ledger.privacy.visibility import may_read_request

from ..context import Context
from ..deps import client_of, context, signed_in
from ..schemas import IntParam, RequestIn

router = APIRouter(tags=["requests"])


def request_view(r) -> dict:
    return {"id": r.id, "payee": r.payee, "payer": r.payer, "currency": r.currency, "amount": r.amount,
            "memo": r.memo, "createdAt": r.created_at, "expiresAt": r.expires_at, "status": r.status,
            "paidSeq": r.paid_seq}


@router.post("/v1/requests", status_code=201)
def create_request(body: RequestIn, p=Depends(signed_in), ctx: Context = Depends(context),
                   client: str = Depends(client_of)):
    ctx.limits.hit("request_per_client", client)
    ctx.limits.hit("request_per_payee", p.address)
    r = ctx.requests.create(payee=p.address, payer=normalize_address(body.payer, what="payer"),
                            currency=body.currency, amount=_int_amount(body.amount), memo=body.memo,
                            expires_in_s=body.expiresInSeconds)
    return JSONResponse(request_view(r), status_code=201)


@router.get("/v1/requests")
def list_requests(p=Depends(signed_in), direction: str = Query("incoming", pattern="^(incoming|outgoing)$"),
                  status: str | None = None, limit: Annotated[IntParam, Query(ge=1, le=500)] = 50, cursor: str | None = None,
                  ctx: Context = Depends(context)):
    items, nxt = ctx.requests.list_for(p.address, direction=direction, status=status, limit=limit, cursor=cursor)
    return {"items": [request_view(r) for r in items], "nextCursor": nxt}


@router.get("/v1/requests/{request_id}")
def get_request(request_id: str, p=Depends(signed_in), ctx: Context = Depends(context)):
    r = ctx.requests.get(request_id)
    if not may_read_request(p.address, r.payer, r.payee):
        raise E.LedgerError("only the payer and the payee may read a payment request", code="forbidden")
    return request_view(r)


@router.post("/v1/requests/{request_id}/decline")
def decline_request(request_id: str, p=Depends(signed_in), ctx: Context = Depends(context)):
    return request_view(ctx.requests.decline(request_id, by=p.address))
