"""Accounts: treasurer-signed administration (open, set limit, freeze/close) and one account's
balances."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from ledger.core import errors as E
from ledger.core.rules import can_spend
from ledger.core.typed_data import action_from_message
from ledger.service import Submission

from ..context import Context
from ..deps import account_address, asked_purpose, context, guard, signed_in
from ..schemas import AdminAction
from .transfers import DUPLICATE, posted_response

router = APIRouter(tags=["accounts"])


@router.post("/v1/admin/actions", status_code=201, responses=DUPLICATE)
def admin_action(body: AdminAction, ctx: Context = Depends(context)):
    action = action_from_message(body.type, body.message)
    return posted_response(ctx.committer().submit(Submission(action, body.signature)))


@router.get("/v1/accounts/{address}")
def account(address: str, p=Depends(signed_in), purpose=Depends(asked_purpose), ctx: Context = Depends(context)):
    address = account_address(address)
    guard(ctx, p, [address], ("account", "balances"), purpose, "GET /v1/accounts/{address}")
    acct = ctx.ledger.account(address)
    if acct is None:
        raise E.UnknownAccount(f"{address} has no account here")
    currencies = ctx.ledger.currencies
    balances = []
    for (_, code), pos in sorted(ctx.ledger.positions(address).items()):
        cur, room = currencies[code], can_spend(pos)
        balances.append({"currency": code, "balance": pos.balance, "creditLimit": pos.credit_limit,
                         "ceiling": pos.ceiling, "canSpend": room,
                         "formatted": {"balance": cur.format(pos.balance), "canSpend": cur.format(room)}})
    return {"address": acct.address, "role": acct.role, "status": acct.status, "balances": balances}
