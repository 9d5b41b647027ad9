"""FastAPI dependencies shared by the routers: the app's context, who is asking, and why."""
from __future__ import annotations

from fastapi import Depends, Header, Query, Request

from ledger.core import errors as E
from ledger.core.addresses import normalize_address
from ledger.privacy.access import Reader

from .auth import Principal
from .context import Context


def context(request: Request) -> Context:
    return request.app.state.ctx


def caller(request: Request, ctx: Context = Depends(context)) -> Principal | None:
    """The signed-in principal, or None without an Authorization header."""
    header = request.headers.get("authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise E.LedgerError("use `Authorization: Bearer <token>`", code="unauthenticated")
    return ctx.auth.authenticate(token.strip())


def signed_in(p: Principal | None = Depends(caller)) -> Principal:
    if p is None:
        raise E.LedgerError("sign in first: POST /v1/auth/challenge, then /v1/auth/token",
                            code="unauthenticated")
    return p


def asked_purpose(
        ayni_purpose: str | None = Header(None, alias="Ayni-Purpose", max_length=64, description=(
            "why you read another member's data: a purpose id of GET /v1/data-policy "
            "(not needed for your own data)")),
        purpose: str | None = Query(None, max_length=64, description="same as the Ayni-Purpose header")):
    return ayni_purpose or purpose


def guard(ctx: Context, p: Principal, subjects: list[str], need: tuple[str, ...], purpose, resource: str,
          want=(), whose: str = "this member") -> set[str] | None:
    """None: the reader's own data. Else the categories they may see (the read is logged)."""
    return ctx.access.authorise(Reader(p.address, p.role), subjects, need, purpose, resource, want, whose)


def only_self(p: Principal, address: str, what: str) -> None:
    if p.address != address:
        raise E.LedgerError(f"only the member may {what}", code="forbidden")


def account_address(address: str) -> str:
    return normalize_address(address, what="account")


def client_of(request: Request, ctx: Context = Depends(context)) -> str:
    """A pseudonym of the calling client's address, for per-client rate limits. Behind a TLS
    proxy, run `ayni serve --forwarded-allow-ips <proxy address>` so this is the real client
    (X-Forwarded-For is believed from no one else: a client must not pick its own address)."""
    return ctx.limits.client(request.client.host if request.client else None)
