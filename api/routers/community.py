"""The community document (what wallets sign) and Sign-In with Ethereum."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from ledger.core.addresses import normalize_address
from ledger.core.typed_data import EIP712_TYPES

from ..context import Context
from ..deps import client_of, context
from ..schemas import ChallengeIn, TokenIn

community_router = APIRouter(tags=["community"])
auth_router = APIRouter(tags=["auth"])


@community_router.get("/v1/community")
def community(ctx: Context = Depends(context)):
    g, contract = ctx.ledger.genesis, ctx.settings.anchor_contract
    return {
        "community": g.community,
        "domain": {**g.domain.as_eip712(), "chainId": str(g.domain.chain_id)},
        "types": EIP712_TYPES,
        "currencies": [{**c.as_dict(), "minorUnit": c.minor_unit, "scale": c.scale} for c in g.currencies],
        "anchor": {"chainId": str(g.domain.chain_id), "contract": contract} if contract else None,
    }


@auth_router.post("/v1/auth/challenge")
def challenge(body: ChallengeIn, ctx: Context = Depends(context), client: str = Depends(client_of)):
    ctx.limits.hit("challenge_per_client", client)  # no per-address limit: it would let anyone lock a member out
    return ctx.auth.challenge(normalize_address(body.address))


@auth_router.post("/v1/auth/token")
def token(body: TokenIn, ctx: Context = Depends(context), client: str = Depends(client_of)):
    ctx.limits.hit("token_per_client", client)
    return ctx.auth.sign_in(body.message, body.signature)
