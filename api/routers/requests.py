"""Payment requests: a payee asks, the payer pays (POST /v1/transfers naming it) or declines.
Only the two parties may read one."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ledger.core import errors as E
from ledger.core.addresses import normalize_address
from ledger.core.typed_data import _int_amount
from ledger.privacy.visibility import may_read_request
from ledger.shops import ROLES_WITH_SHOP

from ..context import Context
from ..deps import client_of, context, signed_in
from ..schemas import IntParam, RequestIn

router = APIRouter(tags=["requests"])


def request_view(r, info=None, *, memo: bool = True) -> dict:
    """`open`: no payer named (any member pays it once; `paidBy` says who did). `till`/`mixed`:
    what a shop's till added (docs/shops.md)."""
    out = {"id": r.id, "payee": r.payee, "payer": r.payer, "currency": r.currency, "amount": r.amount,
           "memo": r.memo if memo else None, "createdAt": r.created_at, "expiresAt": r.expires_at,
           "status": r.status, "paidSeq": r.paid_seq, "open": r.payer is None, "paidBy": r.paid_by}
    if info is not None:
        out["till"] = info.till
        out["checkout"] = info.checkout
        if info.mixed() is not None:
            out["mixed"] = info.mixed()
    return out


def _info(request: Request, r):
    return request.app.state.shops.till_info([bytes.fromhex(r.id[2:])]).get(bytes.fromhex(r.id[2:]))


@router.post("/v1/requests", status_code=201)
def create_request(body: RequestIn, request: Request, p=Depends(signed_in), ctx: Context = Depends(context),
                   client: str = Depends(client_of)):
    ctx.limits.hit("request_per_client", client)
    ctx.limits.hit("request_per_payee", p.address)
    payer = None if body.payer is None else normalize_address(body.payer, what="payer")
    if payer is None and p.role not in ROLES_WITH_SHOP:
        # an open request is a till's: anyone holding its link may pay it, and the web shows it as
        # a shop's; a member asks a named member instead (docs/shops.md)
        raise E.NotAuthorised("only a shop account makes an open request (no payer); name the payer")
    r, info = request.app.state.shops.create_request(
        p.address, payer=payer, currency=body.currency, amount=None if body.amount is None else _int_amount(body.amount),
        memo=body.memo, expires_in_s=body.expiresInSeconds, till=body.till,
        total_minor=None if body.totalMinor is None else _int_amount(body.totalMinor),
        credit_share_bp=body.creditShareBp)
    return JSONResponse(request_view(r, info), status_code=201)


@router.get("/v1/requests")
def list_requests(p=Depends(signed_in), direction: str = Query("incoming", pattern="^(incoming|outgoing)$"),
                  status: str | None = None, limit: Annotated[IntParam, Query(ge=1, le=500)] = 50, cursor: str | None = None,
                  ctx: Context = Depends(context)):
    items, nxt = ctx.requests.list_for(p.address, direction=direction, status=status, limit=limit, cursor=cursor)
    return {"items": [request_view(r) for r in items], "nextCursor": nxt}


@router.get("/v1/requests/{request_id}")
def get_request(request_id: str, request: Request, p=Depends(signed_in), ctx: Context = Depends(context)):
    r = ctx.requests.get(request_id)
    if r.open_to_all and r.status == "open" and p.address != r.payee:
        # an open request is an invitation to whoever holds its link; the memo stays the payee's
        return request_view(r, _info(request, r), memo=False)
    if not may_read_request(p.address, r.paid_by if r.open_to_all else r.payer, r.payee):
        raise E.LedgerError("only the payer and the payee may read a payment request", code="forbidden")
    return request_view(r, _info(request, r))


@router.post("/v1/requests/{request_id}/decline")
def decline_request(request_id: str, p=Depends(signed_in), ctx: Context = Depends(context)):
    return request_view(ctx.requests.decline(request_id, by=p.address))
