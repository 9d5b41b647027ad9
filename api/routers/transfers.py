"""Signed transfers: posting (the signature is the authorisation), one transfer, a history."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ledger.core import errors as E
from ledger.core.addresses import normalize_address
from ledger.core.codec import hex0x, parse_b32
from ledger.core.hashing import ZERO32
from ledger.core.typed_data import Transfer
from ledger.privacy.access import Reader
from ledger.privacy.visibility import is_party, memo_visible
from ledger.service import Posted, Submission
from ledger.shops import SEQ_MAX

from ..auth import Principal
from ..context import Context
from ..deps import account_address, asked_purpose, context, guard, signed_in
from ..errors import error_body, status_for, validation_message
from ..schemas import IntParam, PostTransfer

router = APIRouter(tags=["transfers"])
DUPLICATE = {200: {"description": "an idempotent retry: the original result, `duplicate: true`"}}


def posted_response(result: Posted) -> JSONResponse:
    body = {"seq": result.seq, "kind": result.kind, "digest": result.digest, "duplicate": result.duplicate}
    return JSONResponse(body, status_code=200 if result.duplicate else 201)


@router.post("/v1/transfers", status_code=201, responses=DUPLICATE)
async def post_transfer(body: PostTransfer, ctx: Context = Depends(context)):
    # async: the signature check runs inline (~0.1 ms) and the request awaits its batch's
    # commit without parking a threadpool thread per request.
    m = body.transfer
    salt = parse_b32(body.memoSalt, "memoSalt") if body.memoSalt is not None else None
    try:
        t = Transfer.create(payer=m.payer, payee=m.payee, currency=m.currency, amount=m.amount,
                            nonce=m.nonce, valid_until=m.validUntil, memo_hash=m.memoHash,
                            request_id=m.requestId)
        sub = Submission(t, body.signature, body.memo, salt)
        if t.request_id != ZERO32:
            result = await run_in_threadpool(ctx.requests.pay, hex0x(t.request_id), sub)
        else:
            result = await ctx.committer().submit_async(sub)
    except E.LedgerError as exc:
        ctx.metrics.transfer("refused", exc.code)
        raise
    ctx.metrics.transfer("duplicate" if result.duplicate else "posted")
    return posted_response(result)


# -- many at once --------------------------------------------------------------------------------
MAX_BATCH = 500  # transfers per POST /v1/transfers/batch: one writer transaction's worth
MAX_BATCH_BODY = 1024 * 1024  # bytes: 500 transfers with long memos fit (~1.2 KiB each at most)


class PostTransferBatch(BaseModel):
    # each object is checked on its own, as POST /v1/transfers checks its body (a malformed one
    # is refused in its place, not the batch), so the schema asks only for a list of objects
    transfers: list[dict[str, Any]] = Field(
        min_length=1, description=f"1 to {MAX_BATCH} signed transfers, each a POST /v1/transfers body "
        "(schema PostTransfer); more is 413")

    model_config = ConfigDict(extra="forbid")


class _NotTheSchema(E.InvalidInput):
    """An item POST /v1/transfers would have refused at its schema: 422, as there."""


def _refusal(exc: E.LedgerError) -> dict:
    status = 422 if isinstance(exc, _NotTheSchema) else status_for(exc.code)
    return {"status": status, "body": error_body(exc.code, exc.message)}


def _submission(item: Any) -> Submission:
    """One item as POST /v1/transfers would read it; LedgerError for what it would refuse."""
    try:
        body = PostTransfer.model_validate(item)
    except ValidationError as exc:
        raise _NotTheSchema(validation_message(exc.errors())) from None
    m = body.transfer
    salt = parse_b32(body.memoSalt, "memoSalt") if body.memoSalt is not None else None
    t = Transfer.create(payer=m.payer, payee=m.payee, currency=m.currency, amount=m.amount, nonce=m.nonce,
                        valid_until=m.validUntil, memo_hash=m.memoHash, request_id=m.requestId)
    return Submission(t, body.signature, body.memo, salt)


def _prepare_all(ctx: Context, items: list) -> tuple[list, list]:
    """Parse and check every item (signature recovery included): (results so far, with None where
    a transfer waits to be written; the runs to write, in the order sent). A run is ("plain",
    [(index, prepared)]), consecutive transfers paying no request, written together by the writer,
    or ("pay", [(index, submission)]), payments of payment requests, whose own checks run one by
    one (ledger.requests). Keeping the runs in order makes each answer the one POST /v1/transfers
    would have given had the items been sent one after another: an earlier item wins a nonce or a
    request, and a later one sees its effects (a balance, a paid request)."""
    results: list = [None] * len(items)
    runs: list[tuple[str, list]] = []
    for i, item in enumerate(items):
        try:
            sub = _submission(item)
            if sub.action.request_id != ZERO32:
                kind, job = "pay", (i, sub)
            else:
                kind, job = "plain", (i, ctx.ledger.prepare(sub))
        except E.LedgerError as exc:
            results[i] = exc
            continue
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(job)
        else:
            runs.append((kind, [job]))
    return results, runs


def _pay_requests(ctx: Context, paying: list) -> list:
    out = []
    for i, sub in paying:
        try:
            out.append((i, ctx.requests.pay(hex0x(sub.action.request_id), sub)))
        except E.LedgerError as exc:
            out.append((i, exc))
    return out


@router.post("/v1/transfers/batch", responses={
    200: {"description": "one result per transfer, in the order sent: `status` is what POST /v1/transfers "
                         "would have answered (201 posted, 200 an idempotent retry, 4xx/5xx refused) and "
                         "`body` its body"},
    413: {"description": f"more than {MAX_BATCH} transfers, or a body above {MAX_BATCH_BODY} bytes"}})
async def post_transfer_batch(body: PostTransferBatch, ctx: Context = Depends(context)):
    """Post up to 500 signed transfers at once (a shop's till, a relay). Each is accepted or refused
    on its own, exactly as POST /v1/transfers would: a refused transfer never holds back the others,
    and re-sending the batch (or any item) returns the original results. Items take effect in the order
    sent; consecutive transfers that pay no payment request are written together, in one transaction
    of the ledger's writer, and a payment of a request is written alone, between them."""
    items = body.transfers
    if len(items) > MAX_BATCH:
        raise E.LedgerError(f"a batch holds at most {MAX_BATCH} transfers; this one has {len(items)}: "
                            "split it", code="payload_too_large")
    # parsing and signature recovery off the event loop: ~0.1 ms each, 50 ms for a full batch
    results, runs = await run_in_threadpool(_prepare_all, ctx, items)
    for kind, run in runs:  # in the order sent: each run sees what the runs before it wrote
        if kind == "plain":
            written = await ctx.committer().write_many_async([p for _, p in run])
            for (i, _), outcome in zip(run, written):
                results[i] = outcome
        else:
            for i, outcome in await run_in_threadpool(_pay_requests, ctx, run):
                results[i] = outcome
    out, counts = [], {"posted": 0, "duplicate": 0, "refused": 0}
    for r in results:
        if isinstance(r, E.LedgerError):
            ctx.metrics.transfer("refused", r.code)
            counts["refused"] += 1
            out.append(_refusal(r))
        else:
            outcome = "duplicate" if r.duplicate else "posted"
            ctx.metrics.transfer(outcome)
            counts[outcome] += 1
            out.append({"status": 200 if r.duplicate else 201,
                        "body": {"seq": r.seq, "kind": r.kind, "digest": r.digest, "duplicate": r.duplicate}})
    return {"results": out, **counts}


def transfer_view(v, p: Principal, seen: set[str] | None, memo_ok: set[str] | None = None) -> dict:
    if v.remote is not None:
        return remote_view(v, p, seen)
    out = {"seq": v.seq, "at": v.at, "payer": v.payer, "payee": v.payee, "currency": v.currency,
           "amount": v.amount, "requestId": v.request_id, "digest": v.digest}
    if memo_visible(p.address, v.payer, v.payee, seen, memo_ok):
        out["memo"] = v.memo
    if is_party(p.address, v.payer, v.payee):
        out["direction"] = "out" if p.address == v.payer else "in"
    return out


def remote_view(v, p: Principal, seen: set[str] | None) -> dict:
    """A leg of a remote payment (docs/federation.md): `currency`/`amount` are what moved (or
    is held) here, `remote` says where and what arrived there, and its `status`: pending while
    prepared (held, not paid), completed once committed, failed once aborted (the hold went
    back). `seq` is its remote.prepared entry; `digest` the payment id. The local party is the
    member of this node (payer at the origin, payee at the destination); the counterparty is a
    member of the other community, whose own node logs its reads."""
    r = v.remote
    local = v.payer if v.direction == "out" else v.payee
    out = {"seq": v.seq, "at": v.at, "payer": v.payer, "payee": v.payee, "currency": v.currency,
           "amount": v.amount, "requestId": None, "digest": v.digest,
           "remote": {"paymentId": r.payment_id, "side": r.side, "state": r.state, "status": r.status,
                      "code": r.code or None, "community": r.community, "communityUrl": r.community_url,
                      "counterparty": r.counterparty, "currency": r.currency, "amount": r.amount,
                      "decidedSeq": r.decided_seq}}
    # the memo is both parties' words; the other party's grants live on the other node, so no
    # grant here can cover them (ledger.privacy.visibility): only the member here sees it
    if v.memo is not None and p.address == local:
        out["memo"] = v.memo
    if p.address == local:
        out["direction"] = v.direction
    return out


@router.get("/v1/transfers/{seq}")
def get_transfer(seq: IntParam, request: Request, p=Depends(signed_in), purpose=Depends(asked_purpose),
                 ctx: Context = Depends(context)):
    if seq > SEQ_MAX:  # entries.seq is a BIGINT: the client's mistake, not a database error
        raise E.InvalidInput("seq must be an entry number (at most 2^63-1)")
    v = ctx.queries.transfer(seq)
    # a reader who could not read it anyway is refused alike whether or not seq is a transfer
    seen = guard(ctx, p, [v.payer, v.payee] if v else [], ("entries",), purpose, "GET /v1/transfers/{seq}",
                 want=("memos",), whose="a party of this transfer")
    if v is None:
        raise E.LedgerError(f"there is no transfer {seq}", code="not_found")
    out = transfer_view(v, p, seen)
    if v.remote is None:  # refunds (docs/shops.md): the link both ways, and what remains refundable
        st = request.app.state.shops.refund_state(v.seq)
        out.update({"refundOf": st["refundOf"]} if st["refundOf"] is not None else
                   {"refunds": st["refunds"], "refundableRemaining": st["refundableRemaining"]})
    return out


@router.get("/v1/accounts/{address}/history")
def history(address: str, request: Request, p=Depends(signed_in), purpose=Depends(asked_purpose),
            currency: str | None = None, counterparty: str | None = None,
            since: Annotated[IntParam | None, Query(description="unix ms, inclusive")] = None,
            until: Annotated[IntParam | None, Query(description="unix ms, exclusive")] = None,
            limit: Annotated[IntParam, Query(ge=1, le=500)] = 50, cursor: str | None = None,
            ctx: Context = Depends(context)):
    address = account_address(address)
    seen = guard(ctx, p, [address], ("entries",), purpose, "GET /v1/accounts/{address}/history", want=("memos",))
    if counterparty is not None:
        counterparty = normalize_address(counterparty, what="counterparty")
    items, nxt = ctx.queries.history(address, currency=currency, counterparty=counterparty, since_ms=since,
                                     until_ms=until, limit=limit, cursor=cursor)
    memo_ok = None
    if seen is not None:  # the page shows each counterparty's transfers too: logged for them
        others = {v.payee if v.payer == address else v.payer for v in items if v.remote is None}
        memo_ok = ctx.access.counterparties(Reader(p.address, p.role), others, purpose,
                                            "GET /v1/accounts/{address}/history",
                                            want=("memos",) if "memos" in seen else ())
    links = request.app.state.shops.refund_links(v.seq for v in items if v.remote is None)  # refunds, both ways
    return {"items": [{**transfer_view(v, p, seen, memo_ok), **links.get(v.seq, {})} for v in items],
            "nextCursor": nxt}


@router.get("/v1/accounts/{address}/remote-payments/{paymentId}")
def remote_payment(address: str, paymentId: str = Path(pattern=r"^0x[0-9a-fA-F]{64}$"), p=Depends(signed_in),
                   purpose=Depends(asked_purpose), ctx: Context = Depends(context)):
    """The receipt of a remote payment of this member: as in their history, with its state now."""
    address = account_address(address)
    seen = guard(ctx, p, [address], ("entries",), purpose, "GET /v1/accounts/{address}/remote-payments/{paymentId}",
                 want=("memos",))
    v = ctx.queries.remote_payment(paymentId)
    if v is None or address != (v.payer if v.direction == "out" else v.payee):
        raise E.LedgerError(f"account {address} has no remote payment {paymentId.lower()} here", code="not_found")
    return remote_view(v, p, seen)
