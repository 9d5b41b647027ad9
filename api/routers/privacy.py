"""Data sovereignty (ledger/privacy, docs/privacy.md): the data policy, a member's grants and
preference document, their access log, profile, erasure, and k-anonymous statistics."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse

from ledger.privacy import profiles
from ledger.privacy.retention import erase_member, on_disk
from ledger.privacy.stats import statistics

from ..context import Context
from ..deps import account_address, asked_purpose, context, guard, only_self, signed_in
from ..schemas import ErasureIn, GrantIn, IntParam, ProfileIn

router = APIRouter(tags=["privacy"])


@router.get("/v1/data-policy")
def data_policy(ctx: Context = Depends(context)):
    """Every data item kept: category, purposes, whether essential, who sees it, retention
    (docs/data-policy.schema.json). Public."""
    return ctx.policy.as_json()


@router.get("/v1/accounts/{address}/preferences")
def get_preferences(address: str, p=Depends(signed_in), ctx: Context = Depends(context)):
    """Your data-sharing preference document (docs/preferences.schema.json), portable to
    another cooperative."""
    address = account_address(address)
    only_self(p, address, "read their preferences")
    return ctx.prefs.export(address)


@router.put("/v1/accounts/{address}/preferences")
def put_preferences(address: str, p=Depends(signed_in), doc: dict = Body(...), ctx: Context = Depends(context)):
    """Replace your grants with those of a preference document (e.g. exported elsewhere).
    Grants this cooperative cannot honour are skipped and listed."""
    address = account_address(address)
    only_self(p, address, "change their preferences")
    return ctx.prefs.import_(address, doc)


@router.post("/v1/accounts/{address}/grants", status_code=201)
def add_grant(address: str, body: GrantIn, p=Depends(signed_in), ctx: Context = Depends(context)):
    address = account_address(address)
    only_self(p, address, "grant access to their data")
    return JSONResponse(ctx.prefs.grant(address, body.model_dump()).as_json(), status_code=201)


@router.delete("/v1/accounts/{address}/grants/{grant_id}")
def revoke_grant(address: str, grant_id: str, p=Depends(signed_in), ctx: Context = Depends(context)):
    address = account_address(address)
    only_self(p, address, "revoke their grants")
    ctx.prefs.revoke(address, grant_id)
    return {"revoked": grant_id}


@router.get("/v1/accounts/{address}/access-log")
def access_log(address: str, p=Depends(signed_in), after: Annotated[IntParam, Query(ge=0, le=2**31 - 1)] = 0,
               limit: Annotated[IntParam, Query(ge=1, le=500)] = 100, ctx: Context = Depends(context)):
    """Who read your data, what, for which purpose, on which basis, when (oldest first)."""
    address = account_address(address)
    only_self(p, address, "read their access log")
    rows, nxt = ctx.access.log_for(address, after_id=after, limit=limit)
    return {"items": [r.as_json() for r in rows], "nextAfter": nxt}


@router.get("/v1/accounts/{address}/profile")
def get_profile(address: str, p=Depends(signed_in), purpose=Depends(asked_purpose), ctx: Context = Depends(context)):
    address = account_address(address)
    guard(ctx, p, [address], ("profile",), purpose, "GET /v1/accounts/{address}/profile")
    return profiles.get(ctx.ledger, address)


@router.put("/v1/accounts/{address}/profile")
def put_profile(address: str, body: ProfileIn, p=Depends(signed_in), ctx: Context = Depends(context)):
    address = account_address(address)
    only_self(p, address, "change their profile")
    return profiles.put(ctx.ledger, address, display_name=body.displayName, contact=body.contact)


@router.post("/v1/accounts/{address}/erasure")
def erase(address: str, body: ErasureIn, p=Depends(signed_in), ctx: Context = Depends(context)):
    """Erase your memos (memo and salt; the log keeps only the salted hash, so every
    signature, anchor and receipt still verifies) and/or your profile, now. `bytesOnDisk`:
    "gone" when the bytes have left the database files too, "pending" while a reader still
    holds them (never waited for: retried in the background; ask GET .../erasure)."""
    address = account_address(address)
    only_self(p, address, "ask for erasure of their data")
    done = erase_member(ctx.ledger, address, memos=body.memos, profile=body.profile, board=body.board)
    return {"erased": done.as_dict(), "bytesOnDisk": done.bytes_on_disk,
            **({"warnings": list(done.warnings)} if done.warnings else {})}


@router.get("/v1/accounts/{address}/erasure")
def erasure_state(address: str, p=Depends(signed_in), ctx: Context = Depends(context)):
    """Whether what you erased is gone from the database files yet (`bytesOnDisk`: "gone") or
    still waiting for a reader to finish ("pending"; retried in the background, and once more
    now). Read from the database: every worker answers the same; conservative (pending while
    anyone's erasure is)."""
    address = account_address(address)
    only_self(p, address, "ask about their erasure")
    return {"bytesOnDisk": on_disk(ctx.ledger, address)}


@router.get("/v1/stats")
def stats(p=Depends(signed_in), ctx: Context = Depends(context)):
    """Aggregates for collective bargaining: transfers and amounts per currency, payee role
    and closed month, active members; every group smaller than the cooperative's k, or
    dominated by one party, suppressed. No per-person figure. k is the server's alone (a
    caller's choice of k would let two answers be subtracted)."""
    return statistics(ctx.ledger, k=ctx.settings.stats_k)
