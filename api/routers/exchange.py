"""The exchange board (docs/exchange.md): listings, conversations, arrangements.

Thin: the rules and who may see what are in ledger.exchange and ledger.core.exchange. Reading
other members' listings names the purpose `exchange`; conversations and arrangements are the
reader's own data (only their two parties ever see them). Nothing here ranks: search has two
orders, newest and the daily shuffle."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from ledger.core.purposes import EXCHANGE_PURPOSE
from ledger.core.vocab import Role
from ledger.privacy.access import Reader, check_board_purpose

from ..context import Context
from ..deps import asked_purpose, context, signed_in
from ..schemas import IntParam
from .requests import request_view

router = APIRouter(tags=["exchange"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SlotIn(_Body):
    day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    from_: StrictStr = Field(alias="from", examples=["09:00"])
    to: StrictStr = Field(examples=["12:00"])


class ListingIn(_Body):
    kind: Literal["offer", "need"] = Field(examples=["offer"])
    title: StrictStr = Field(max_length=1000, examples=["Elderly care, weekday mornings"])
    description: StrictStr = Field("", max_length=10_000, examples=["Company, walks, help with shopping."])
    category: StrictStr = Field(max_length=40, examples=["elderly_care"])
    area: StrictStr = Field(max_length=40, examples=["centro"])
    currency: StrictStr = Field(max_length=12, examples=["HOUR"])
    priceUnit: Literal["hour", "item", "agree"] = Field(examples=["hour"])
    price: StrictInt | None = Field(None, description="minor units per hour or item (HOUR: minutes, CRED: cents); "
                                    "null when the price is to agree", examples=[60])
    availability: StrictStr | None = Field(None, max_length=1000, examples=["weekday mornings"])
    slots: list[SlotIn] | None = Field(None, max_length=14)
    expiresInDays: StrictInt | None = Field(None, description="offers 30 by default, needs 7; at most 90",
                                            examples=[30])


class ListingPatch(_Body):
    """Any field of a listing but its kind; only those given change."""
    title: StrictStr | None = Field(None, max_length=1000)
    description: StrictStr | None = Field(None, max_length=10_000)
    category: StrictStr | None = Field(None, max_length=40)
    area: StrictStr | None = Field(None, max_length=40)
    currency: StrictStr | None = Field(None, max_length=12)
    priceUnit: Literal["hour", "item", "agree"] | None = None
    price: StrictInt | None = None
    availability: StrictStr | None = Field(None, max_length=1000)
    slots: list[SlotIn] | None = Field(None, max_length=14)
    expiresInDays: StrictInt | None = Field(None, examples=[30])


class ReasonIn(_Body):
    reason: StrictStr = Field(max_length=2000, examples=["contains a phone number of someone else"])


class MessageIn(_Body):
    message: StrictStr = Field(max_length=10_000, examples=["I can help on Tuesday morning."])


class TextIn(_Body):
    text: StrictStr = Field(max_length=10_000, examples=["Thank you, it made my week."])


class ArrangementIn(_Body):
    what: StrictStr = Field(max_length=1000, examples=["Help after surgery: shopping and cooking"])
    when: StrictStr | None = Field(None, max_length=1000, examples=["12-14 May, mornings"])
    minutes: StrictInt | None = Field(None, description="time of the work; for HOUR it defaults to the amount",
                                      examples=[180])
    currency: StrictStr = Field(max_length=12, examples=["HOUR"])
    amount: StrictInt = Field(description="minor units (HOUR: minutes, CRED: cents)", examples=[180])


class PaymentAskIn(_Body):
    expiresInSeconds: StrictInt = Field(7 * 86_400, ge=60, le=90 * 86_400)
    memo: StrictStr | None = Field(None, max_length=500)


def _fields(body: BaseModel, *, patch: bool = False) -> dict:
    return body.model_dump(by_alias=True, exclude_unset=patch)


def board(request: Request):
    return request.app.state.exchange


# -- views -----------------------------------------------------------------------------------
def listing_view(x, item, reader: str, *, moderator: bool = False) -> dict:
    from ledger.core.exchange import format_slots
    mine = item.author == reader
    out = {"id": item.id, "kind": item.kind, "title": item.title, "description": item.description,
           "category": item.category, "categoryLabel": x.config.category_label(item.category),
           "area": item.area, "areaLabel": x.config.area_label(item.area), "currency": item.currency,
           "priceUnit": item.price_unit, "price": item.price, "availability": item.availability,
           "slots": format_slots(item.slots), "status": item.status, "createdAt": item.created_at,
           "updatedAt": item.updated_at, "expiresAt": item.expires_at, "mine": mine, "hidden": None}
    if mine:
        out["author"] = item.author
    if (mine or moderator) and item.hidden_at is not None:
        out["hidden"] = {"at": item.hidden_at, "reason": item.hidden_reason}
    return out


def conversation_view(c, reader: str) -> dict:
    return {"id": c.id, "listing": {"id": c.listing_id, "kind": c.listing_kind, "title": c.listing_title,
                                    "status": c.listing_status},
            "author": c.author, "responder": c.responder, "you": "author" if reader == c.author else "responder",
            "createdAt": c.created_at, "lastMessageAt": c.last_at}


def message_view(m) -> dict:
    return {"id": m.id, "from": m.sender, "text": m.body, "at": m.at}


def arrangement_view(a) -> dict:
    return {"id": a.id, "conversationId": a.conversation_id, "listingId": a.listing_id, "category": a.category,
            "what": a.what, "when": a.when, "minutes": a.minutes, "currency": a.currency, "amount": a.amount,
            "proposer": a.proposer, "provider": a.provider, "receiver": a.receiver, "status": a.status,
            "createdAt": a.created_at, "decidedAt": a.decided_at, "requestId": a.request_id,
            "thanksReceived": a.thanks_received}


def _moderator(p) -> bool:
    return p.role == Role.TREASURER


# -- listings --------------------------------------------------------------------------------
@router.get("/v1/listings/config")
def listings_config(p=Depends(signed_in), x=Depends(board)):
    """The cooperative's categories and neighbourhoods, and the board's fixed rules."""
    return x.config_view()


@router.post("/v1/listings", status_code=201)
def post_listing(body: ListingIn, p=Depends(signed_in), x=Depends(board), ctx: Context = Depends(context)):
    ctx.limits.check("listing_per_member", p.address)  # refused input does not use up the day
    item = x.post(p.address, p.role, _fields(body))
    ctx.limits.record("listing_per_member", p.address)
    return JSONResponse(listing_view(x, item, p.address), status_code=201)


@router.get("/v1/listings")
def search_listings(p=Depends(signed_in), purpose=Depends(asked_purpose), ctx: Context = Depends(context),
                    x=Depends(board), kind: Literal["offer", "need"] | None = None,
                    category: str | None = Query(None, max_length=40), area: str | None = Query(None, max_length=40),
                    currency: str | None = Query(None, max_length=12), q: str | None = Query(None, max_length=200),
                    order: Literal["newest", "shuffle"] = "newest",
                    limit: Annotated[IntParam, Query(ge=1, le=500)] = 50, cursor: str | None = None):
    """Listings every member sees (active, unhidden, unexpired), newest first or in the
    daily shuffle; `q` filters by whole words and never re-orders. Purpose `exchange`."""
    check_board_purpose(ctx.access, Reader(p.address, p.role), purpose)
    items, nxt, day = x.search(kind=kind, category=category, area=area, currency=currency, q=q, order=order,
                               limit=limit, cursor=cursor)
    return {"items": [listing_view(x, i, p.address) for i in items], "nextCursor": nxt, "order": order, "day": day}


@router.get("/v1/listings/mine")
def my_listings(p=Depends(signed_in), x=Depends(board),
                status: Literal["active", "paused", "closed", "expired", "hidden"] | None = None,
                limit: Annotated[IntParam, Query(ge=1, le=500)] = 50, cursor: str | None = None):
    items, nxt = x.mine(p.address, status=status, limit=limit, cursor=cursor)
    return {"items": [listing_view(x, i, p.address) for i in items], "nextCursor": nxt}


@router.get("/v1/listings/{listing_id}")
def get_listing(listing_id: str, p=Depends(signed_in), purpose=Depends(asked_purpose),
                ctx: Context = Depends(context), x=Depends(board)):
    item = x.get(listing_id, p.address, p.role)
    if item.author != p.address:
        reader = Reader(p.address, p.role)
        check_board_purpose(ctx.access, reader, purpose)
        if not item.public:  # a moderator reading a hidden or inactive listing: the author's access log says so
            ctx.access.record(reader, [item.author], ["listings"], purpose, "policy",
                              "GET /v1/listings/{listing_id}", ctx.ledger.clock())
    return listing_view(x, item, p.address, moderator=_moderator(p))


@router.patch("/v1/listings/{listing_id}")
def edit_listing(listing_id: str, body: ListingPatch, p=Depends(signed_in), x=Depends(board)):
    return listing_view(x, x.edit(listing_id, p.address, _fields(body, patch=True)), p.address)


def _act(action: str):
    def act(listing_id: str, p=Depends(signed_in), x=Depends(board)):
        return listing_view(x, x.act(listing_id, p.address, action), p.address)
    act.__name__ = f"{action}_listing"
    act.__doc__ = f"The author {action}s the listing" + (" (final; no reason asked)." if action == "close" else ".")
    return act


for _action in ("pause", "resume", "close"):
    router.post(f"/v1/listings/{{listing_id}}/{_action}")(_act(_action))


@router.post("/v1/listings/{listing_id}/hide")
def hide_listing(listing_id: str, body: ReasonIn, p=Depends(signed_in), x=Depends(board)):
    """A treasurer hides a listing, with a reason its author sees; logged."""
    return listing_view(x, x.moderate(listing_id, p.address, p.role, "hide", body.reason), p.address, moderator=True)


@router.post("/v1/listings/{listing_id}/unhide")
def unhide_listing(listing_id: str, body: ReasonIn, p=Depends(signed_in), x=Depends(board)):
    return listing_view(x, x.moderate(listing_id, p.address, p.role, "unhide", body.reason), p.address,
                        moderator=True)


@router.get("/v1/listings/{listing_id}/moderation")
def listing_moderation(listing_id: str, p=Depends(signed_in), x=Depends(board)):
    """Every hide and unhide of the listing: its author and treasurers."""
    return {"items": [{"id": m.id, "action": m.action, "moderator": m.moderator, "reason": m.reason, "at": m.at}
                      for m in x.moderation_log(listing_id, p.address, p.role)]}


@router.post("/v1/listings/{listing_id}/conversations", status_code=201)
def answer_listing(listing_id: str, body: MessageIn, p=Depends(signed_in), x=Depends(board),
                   ctx: Context = Depends(context)):
    """"I can help" / "I'm interested": opens (or continues) your private conversation with
    the listing's author."""
    ctx.limits.check("board_message_per_member", p.address)
    conv, created = x.answer(listing_id, p.address, p.role, body.message)
    ctx.limits.record("board_message_per_member", p.address)
    return JSONResponse(conversation_view(conv, p.address), status_code=201 if created else 200)


# -- conversations ---------------------------------------------------------------------------
@router.get("/v1/conversations")
def list_conversations(p=Depends(signed_in), x=Depends(board),
                       limit: Annotated[IntParam, Query(ge=1, le=500)] = 50, cursor: str | None = None):
    items, nxt = x.conversations(p.address, limit=limit, cursor=cursor)
    return {"items": [conversation_view(c, p.address) for c in items], "nextCursor": nxt}


@router.get("/v1/conversations/{conversation_id}")
def get_conversation(conversation_id: str, p=Depends(signed_in), x=Depends(board)):
    return conversation_view(x.conversation(conversation_id, p.address), p.address)


@router.get("/v1/conversations/{conversation_id}/messages")
def list_messages(conversation_id: str, p=Depends(signed_in), x=Depends(board),
                  after: Annotated[IntParam, Query(ge=0, le=2**31 - 1)] = 0,
                  limit: Annotated[IntParam, Query(ge=1, le=500)] = 100):
    items, nxt = x.messages(conversation_id, p.address, after=after, limit=limit)
    return {"items": [message_view(m) for m in items], "nextAfter": nxt}


@router.post("/v1/conversations/{conversation_id}/messages", status_code=201)
def send_message(conversation_id: str, body: TextIn, p=Depends(signed_in), x=Depends(board),
                 ctx: Context = Depends(context)):
    ctx.limits.check("board_message_per_member", p.address)
    message = x.send(conversation_id, p.address, body.text)
    ctx.limits.record("board_message_per_member", p.address)
    return JSONResponse(message_view(message), status_code=201)


@router.post("/v1/conversations/{conversation_id}/arrangements", status_code=201)
def propose_arrangement(conversation_id: str, body: ArrangementIn, p=Depends(signed_in), x=Depends(board),
                        ctx: Context = Depends(context)):
    ctx.limits.check("arrangement_per_member", p.address)
    a = x.propose(conversation_id, p.address, _fields(body))
    ctx.limits.record("arrangement_per_member", p.address)
    return JSONResponse(arrangement_view(a), status_code=201)


# -- arrangements ----------------------------------------------------------------------------
@router.get("/v1/arrangements")
def list_arrangements(p=Depends(signed_in), x=Depends(board),
                      status: Literal["proposed", "accepted", "payment_requested", "paid", "cancelled"] | None = None,
                      conversation: str | None = Query(None, max_length=32),
                      limit: Annotated[IntParam, Query(ge=1, le=500)] = 50, cursor: str | None = None):
    items, nxt = x.arrangements(p.address, status=status, conversation=conversation, limit=limit, cursor=cursor)
    return {"items": [arrangement_view(a) for a in items], "nextCursor": nxt}


@router.get("/v1/arrangements/{arrangement_id}")
def get_arrangement(arrangement_id: str, p=Depends(signed_in), x=Depends(board)):
    return arrangement_view(x.arrangement(arrangement_id, p.address))


@router.post("/v1/arrangements/{arrangement_id}/accept")
def accept_arrangement(arrangement_id: str, p=Depends(signed_in), x=Depends(board)):
    return arrangement_view(x.accept(arrangement_id, p.address))


@router.post("/v1/arrangements/{arrangement_id}/cancel")
def cancel_arrangement(arrangement_id: str, p=Depends(signed_in), x=Depends(board)):
    """Either party; no reason asked, no penalty, nothing counted."""
    return arrangement_view(x.cancel(arrangement_id, p.address))


@router.post("/v1/arrangements/{arrangement_id}/request-payment", status_code=201)
def request_payment(arrangement_id: str, p=Depends(signed_in), x=Depends(board),
                    body: PaymentAskIn | None = None):
    """The provider asks the receiver for the agreed amount: an ordinary payment request
    (GET /v1/requests/{id}), which the receiver pays with a signed transfer naming it."""
    body = body or PaymentAskIn()
    a, r = x.request_payment(arrangement_id, p.address, expires_in_s=body.expiresInSeconds, memo=body.memo)
    return JSONResponse({"arrangement": arrangement_view(a), "request": request_view(r)}, status_code=201)


@router.post("/v1/arrangements/{arrangement_id}/thanks", status_code=201)
def thank(arrangement_id: str, body: TextIn, p=Depends(signed_in), x=Depends(board)):
    """A private thank-you note: only the other party reads it; nothing counts it."""
    x.thank(arrangement_id, p.address, body.text)
    return JSONResponse({}, status_code=201)


__all__ = ["EXCHANGE_PURPOSE", "router"]
