"""The books as a whole: the entry log and the balance sheet (for a treasurer's reconciliation
or an auditor's audit, every read logged as one access-log row "all members"), anchored
batches (public) and a member's receipt."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ledger.core import errors as E
from ledger.privacy import visibility
from ledger.privacy.access import ALL

from ..context import Context
from ..deps import asked_purpose, context, guard, signed_in
from ..schemas import MAX_SEQ, IntParam

router = APIRouter(tags=["audit"])
anchoring_router = APIRouter(tags=["anchoring"])


@router.get("/v1/log")
def log(p=Depends(signed_in), purpose=Depends(asked_purpose), after: Annotated[IntParam, Query(ge=0, le=MAX_SEQ)] = 0,
        limit: Annotated[IntParam, Query(ge=1, le=1000)] = 100, ctx: Context = Depends(context)):
    """The whole entry log, page by page (treasurers, `Ayni-Purpose: reconciliation`). Each
    page read is one access-log row "all members", which every member can see."""
    guard(ctx, p, [ALL], ("entries",), purpose, "GET /v1/log")
    entries, nxt = ctx.queries.log(after_seq=after, limit=limit)
    return {"entries": [e.as_dict() for e in entries], "nextAfter": nxt}


@router.get("/v1/balances")
def balance_sheet(p=Depends(signed_in), purpose=Depends(asked_purpose), ctx: Context = Depends(context)):
    """Every account's balances and limits as of `headSeq` (one snapshot): what a treasurer
    reconciles against an independent replay of the log up to that seq
    (`Ayni-Purpose: reconciliation`; one access-log row "all members")."""
    guard(ctx, p, [ALL], ("balances",), purpose, "GET /v1/balances")
    seq, chain_hash, positions = ctx.ledger.balance_sheet()
    return {"headSeq": seq, "headChainHash": "0x" + chain_hash.hex(), "balances": [
        {"account": a, "currency": c, "balance": pos.balance, "creditLimit": pos.credit_limit,
         "ceiling": pos.ceiling} for (a, c), pos in sorted(positions.items())]}


def anchoring(ctx: Context):
    from ledger.anchoring import Anchoring
    if not ctx.settings.anchor_contract:
        raise E.LedgerError("this cooperative does not anchor to a chain", code="not_found")
    return Anchoring(ctx.ledger, contract=ctx.settings.anchor_contract)


@anchoring_router.get("/v1/anchors")
def anchors(limit: Annotated[IntParam, Query(ge=1, le=1000)] = 100,
            after: Annotated[IntParam, Query(ge=0, le=MAX_SEQ, description="first seq after")] = 0,
            ctx: Context = Depends(context)):
    """Anchored batches: ranges, roots and transactions only (public, nothing personal)."""
    rows = [b for b in anchoring(ctx).batches(include_failed=False) if b["first_seq"] > after][:limit]
    return {"contract": ctx.settings.anchor_contract, "batches": [
        {"firstSeq": b["first_seq"], "lastSeq": b["last_seq"], "root": "0x" + bytes(b["root"]).hex(),
         "chainId": str(b["chain_id"]), "status": b["status"], "txHash": b["tx_hash"], "block": b["block"],
         "gasUsed": b["gas_used"]} for b in rows]}


@anchoring_router.get("/v1/receipts/{seq}")
def receipt(seq: IntParam, p=Depends(signed_in), purpose=Depends(asked_purpose), ctx: Context = Depends(context)):
    """The receipt a member keeps: checkable with `ayni-wallet verify` and any node of the chain.
    Others name a purpose (a treasurer: `reconciliation`)."""
    job = anchoring(ctx)
    guard(ctx, p, entry_subjects(ctx, seq), ("entries",), purpose, "GET /v1/receipts/{seq}",
          whose="a party of this entry")
    return job.receipt(seq)


def entry_subjects(ctx: Context, seq: int) -> list[str]:
    """Whose data the entry at `seq` is (ledger.privacy.visibility.entry_subjects); [] when
    there is no such entry."""
    if not 1 <= seq <= ctx.ledger.head()[0]:
        return []
    entries, _ = ctx.queries.log(after_seq=seq - 1, limit=1)
    if not entries or entries[0].seq != seq:
        return []
    return visibility.entry_subjects(entries[0].kind, entries[0].body)
