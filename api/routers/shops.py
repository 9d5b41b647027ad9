"""Shops (ledger/shops.py, docs/shops.md): the public profile, checkouts from the standing
payment code, refunds the shop signs, the live takings feed (and its SSE stream), the report."""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import Field, StrictBool, StrictInt
from starlette.concurrency import run_in_threadpool

from ledger.core import errors as E
from ledger.core.typed_data import _int_amount
from ledger.shops import FEED_MAX, Shops, TillInfo, parse_cursor, report_csv

from ..context import Context
from ..deps import account_address, client_of, context, only_self, signed_in
from ..schemas import IntParam, Strict, Uint
from .requests import request_view

router = APIRouter(tags=["shops"])
STREAM_POLL_S = 1.0
STREAM_ROUTE = "GET /v1/shops/{shop}/takings/stream"  # the access log names what showed a name
STREAMS_PER_SHOP = 4  # live streams per shop, per API worker process (docs/shops.md)
_streams: Counter = Counter()  # shop -> streams open in this process (one event loop: no lock)
STREAM_MAX_S = 300.0  # a stream ends after 5 minutes; the client reconnects with Last-Event-ID


def shops(request: Request) -> Shops:
    return request.app.state.shops


class ProfileIn(Strict):
    name: str = Field(max_length=120, examples=["Panadería La Espiga"])
    postalAddress: str | None = Field(None, max_length=240, examples=["Calle Mayor 3, Ayni"])
    openingHours: str | None = Field(None, max_length=240, examples=["Mon-Sat 8:00-14:00"])
    creditShareBp: StrictInt | None = Field(None, ge=0, le=10_000, description="share of a price taken in credit, "
                                            "basis points (3000 = 30 %)")
    published: StrictBool = True


class CheckoutIn(Strict):
    currency: str
    amount: Uint | None = Field(None, description="the credit amount; omitted for a mixed payment (computed)")
    till: str | None = Field(None, max_length=64)
    shareName: StrictBool = False
    totalMinor: Uint | None = Field(None, description="mixed payment: the whole price in minor units")
    creditShareBp: StrictInt | None = Field(None, description="mixed payment: share in credit, basis points")


class RefundIn(Strict):
    amount: Uint


def till_fields(info: TillInfo | None, share_name: bool | None = None) -> dict:
    out = {"till": info.till if info else None, "checkout": bool(info and info.checkout)}
    mixed = info.mixed() if info else None
    if mixed is not None:
        out["mixed"] = mixed
    if share_name is not None:
        out["shareName"] = share_name
    return out


@router.put("/v1/shops/{address}/profile")
def put_profile(address: str, body: ProfileIn, p=Depends(signed_in), s: Shops = Depends(shops)):
    address = account_address(address)
    only_self(p, address, "set its shop profile")
    prof = s.set_profile(address, name=body.name, postal_address=body.postalAddress, opening_hours=body.openingHours,
                         credit_share_bp=body.creditShareBp, published=body.published)
    return prof.public()


@router.post("/v1/shops/{address}/profile/unpublish")
def unpublish(address: str, p=Depends(signed_in), s: Shops = Depends(shops)):
    address = account_address(address)
    only_self(p, address, "unpublish its shop profile")
    return s.unpublish(address).public()


@router.delete("/v1/shops/{address}/profile")
def erase_profile(address: str, p=Depends(signed_in), s: Shops = Depends(shops)):
    address = account_address(address)
    only_self(p, address, "erase its shop profile")
    return {"erased": s.erase_profile(address)}


@router.get("/v1/shops/{address}")
def get_shop(address: str, request: Request, s: Shops = Depends(shops)):
    """Public: what the shop chose to publish (no sign-in needed: a customer sees whom they pay
    before signing). The shop itself also sees its unpublished profile when signed in."""
    address = account_address(address)
    header = request.headers.get("authorization")
    if header:
        ctx: Context = request.app.state.ctx
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            try:
                p = ctx.auth.authenticate(token.strip())
            except E.LedgerError:
                p = None
            if p is not None and p.address == address:
                own = s.profile(address)
                if own is not None:
                    return own.public()
    return s.public_profile(address).public()


@router.post("/v1/shops/{address}/checkouts", status_code=201)
def checkout(address: str, body: CheckoutIn, p=Depends(signed_in), ctx: Context = Depends(context),
             client: str = Depends(client_of), s: Shops = Depends(shops)):
    """The customer's request to a shop from its standing code (the customer types the amount);
    the customer then signs a Transfer naming the request's id and posts /v1/transfers."""
    address = account_address(address)
    ctx.limits.hit("request_per_client", client)
    ctx.limits.hit("checkout_per_member", p.address)
    r, info, share = s.checkout(address, p.address, currency=body.currency,
                                amount=None if body.amount is None else _int_amount(body.amount), till=body.till,
                                share_name=body.shareName,
                                total_minor=None if body.totalMinor is None else _int_amount(body.totalMinor),
                                credit_share_bp=body.creditShareBp)
    return JSONResponse({**request_view(r), **till_fields(info, share)}, status_code=201)


@router.post("/v1/requests/{request_id}/share-name")
def share_name(request_id: str, p=Depends(signed_in), s: Shops = Depends(shops)):
    """The payer consents that the shop sees their display name for this payment only."""
    s.share_name(request_id, p.address)
    return {"requestId": request_id.lower(), "shareName": True}


@router.post("/v1/transfers/{seq}/refunds", status_code=201)
def prepare_refund(seq: IntParam, body: RefundIn, p=Depends(signed_in), ctx: Context = Depends(context),
                   s: Shops = Depends(shops)):
    """A refund id for `amount` of payment `seq` (only its payee may). Sign a Transfer from you to
    the original payer with requestId = refundId and POST it to /v1/transfers."""
    ctx.limits.hit("refund_per_shop", p.address)
    return JSONResponse(s.prepare_refund(seq, p.address, _int_amount(body.amount)), status_code=201)


@router.get("/v1/shops/{address}/takings/feed")
def takings_feed(address: str, p=Depends(signed_in), after: str | None = Query(None, max_length=20),
                 limit: Annotated[IntParam, Query(ge=1, le=FEED_MAX)] = 50, s: Shops = Depends(shops)):
    address = account_address(address)
    only_self(p, address, "read its takings")
    items, nxt = s.feed(address, after=after, limit=limit, reader_role=p.role)
    return {"items": items, "nextCursor": nxt}


@router.get("/v1/shops/{address}/takings/stream")
async def takings_stream(address: str, request: Request, p=Depends(signed_in),
                         after: str | None = Query(None, max_length=20),
                         last_event_id: str | None = Header(None, alias="Last-Event-ID", max_length=20),
                         s: Shops = Depends(shops)):
    """Server-sent events of the feed's items (`id:` = the cursor after that item). Reconnect with
    `Last-Event-ID` (browsers do) or `?after=`: no item is repeated or missed."""
    address = account_address(address)
    only_self(p, address, "read its takings")
    cursor = last_event_id or after or "0"
    parse_cursor(cursor)  # a malformed cursor is refused (400) before streaming starts
    if _streams[address] >= STREAMS_PER_SHOP:
        # each stream polls the database every second: a till needs one or two, not hundreds
        raise E.RateLimited(f"at most {STREAMS_PER_SHOP} live takings streams per shop are open at once; "
                            "close one, or poll GET .../takings/feed", retry_after_s=STREAM_MAX_S)

    async def events():
        nonlocal cursor
        started = time.monotonic()
        _streams[address] += 1  # counted while the generator runs: its finally always gives it back
        try:
            yield "retry: 2000\n\n"
            while time.monotonic() - started < STREAM_MAX_S:
                if await request.is_disconnected():
                    return
                items, nxt = await run_in_threadpool(s.feed, address, after=cursor, limit=FEED_MAX,
                                                     reader_role=p.role, route=STREAM_ROUTE)
                for item in items:
                    yield f"id: {item['seq']}\nevent: taking\ndata: {json.dumps(item, separators=(',', ':'))}\n\n"
                cursor = nxt
                if not items:
                    yield ": keep-alive\n\n"
                    await asyncio.sleep(STREAM_POLL_S)
        finally:
            _streams[address] -= 1

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/v1/shops/{address}/takings")
def takings_report(address: str, p=Depends(signed_in), from_: str = Query(alias="from", max_length=10),
                   to: str = Query(max_length=10), period: str = Query("day", pattern="^(day|week|month)$"),
                   till: str | None = Query(None, max_length=64), format: str = Query("json", pattern="^(json|csv)$"),
                   s: Shops = Depends(shops)):
    address = account_address(address)
    only_self(p, address, "read its takings")
    rows, totals = s.report(address, from_day=from_, to_day=to, period=period, till=till)
    if format == "csv":
        return PlainTextResponse(report_csv(rows), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="takings-{from_}-{to}.csv"'})
    return {"from": from_, "to": to, "period": period, "till": till, "rows": rows, "totals": totals}
