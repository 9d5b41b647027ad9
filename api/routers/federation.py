"""Federation (docs/federation.md): node-to-node messages, alliances, remote payments.

Who may do what:
- node-to-node endpoints (messages, proposals, acceptances) are authenticated by the sending
  node's EIP-712 signature, checked by FederationNode against the alliance; a member token is
  neither needed nor looked at;
- treasurer actions (propose, accept, suspend/resume/end) are EIP-712 messages signed by a
  treasurer of this community: the signature is the authorisation, as for admin actions;
- a payer posts a signed RemoteTransfer: the signature is the authorisation, as for transfers.
Every refusal is the ledger's error code (api/errors.py gives each its status); nothing is
written when one is raised.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ledger.core import errors as E
from ledger.core.hashing import ZERO32
from ledger.federation.driver import (
    ACCEPTANCES_PATH,
    PROPOSALS_PATH,
    TransportError,
    send_payment_now,
)

from ..context import Context
from ..deps import client_of, context
from ..schemas import Strict, Uint

router = APIRouter(tags=["federation"])
B32 = r"^0x[0-9a-fA-F]{64}$"
WAIT_FOR_DECISION_S = 2.0
WIRE = Body(..., description="a wire message signed by the peer's node key (docs/federation.md)",
            examples=[{"message": {"allianceId": "0x" + "00" * 32, "paymentId": "0x" + "00" * 32,
                                   "kind": "prepare", "code": "", "at": 0}, "signature": "0x"}])


async def federation(request: Request):
    """This node's Federation (node + transport), or 404 when no node key is configured.
    (async: no I/O here, so no threadpool hop of its own.)"""
    fed = getattr(request.app.state, "federation", None)
    if fed is None:
        raise E.LedgerError("this node takes no part in a federation (no node key configured)", code="not_found")
    return fed


def _json(value, status: int = 200) -> Response:
    return Response(status_code=204) if value is None else JSONResponse(value, status_code=status)


# --- public identity ---------------------------------------------------------------------------

@router.get("/v1/federation/node")
def node_identity(fed=Depends(federation)):
    """What a peer's treasurer needs to write alliance terms naming this node."""
    return fed.identity()


# --- node to node ------------------------------------------------------------------------------

@router.post("/v1/federation/messages", responses={204: {"description": "accepted; no reply needed"}})
def node_message(wire: dict[str, Any] = WIRE, fed=Depends(federation), ctx: Context = Depends(context),
                 client: str = Depends(client_of)):
    """A protocol message from the peer node: PREPARE, a vote, a decision or an ACK. The reply
    (node-signed) is the body; its entries are durable before it is returned.

    Or a batch `{"messages": [...]}` (up to 64): handled in one transaction, answered 200
    `{"results": [...]}` with, per message in order, its reply, null, or `{"error": {"code",
    "message"}}` (a refused message refuses only itself). Rate-limited per client (requests, a
    batch counts once), far above what a peer node sends."""
    ctx.limits.hit("node_messages_per_client", client)
    return _json(fed.node.receive(wire))


@router.post("/v1/federation/alliances/proposals", status_code=201)
def receive_proposal(proposal: dict[str, Any] = Body(..., description="alliance terms signed by the "
                                                     "proposing treasurer, forwarded by its node"),
                     fed=Depends(federation), ctx: Context = Depends(context),
                     client: str = Depends(client_of)):
    """Stored as pending (not in the log) until this community's treasurer accepts. Signed by the
    proposing node (its `propose` message) as well as its treasurer; rate-limited per client, and
    the pending ones are capped (too_many_proposals)."""
    ctx.limits.hit("proposal_per_client", client)
    return JSONResponse(fed.node.receive_proposal(proposal), status_code=201)


@router.post("/v1/federation/alliances/acceptances")
def receive_acceptance(message: dict[str, Any] = Body(..., description="the accepting node's signed "
                                                      "alliance-recorded message"),
                       fed=Depends(federation), ctx: Context = Depends(context),
                       client: str = Depends(client_of)):
    """The proposer's end of an alliance: recorded once this community's own treasurer's
    signature of the terms is checked (a forgery is refused before any write). Rate-limited
    per client."""
    ctx.limits.hit("acceptance_per_client", client)
    return fed.node.receive_acceptance(message)


@router.get("/v1/federation/alliances")
def alliances(fed=Depends(federation)):
    """Alliances recorded here, then proposals awaiting this treasurer (status `proposed`): for
    those only who proposes (community, node, URL), not the terms nor any signature."""
    proposals = [{**p, "status": "proposed"} for p in fed.node.proposals()]
    return {"items": fed.node.alliances() + proposals}


@router.get("/v1/federation/alliances/proposals/{allianceId}")
def pending_proposal(allianceId: str = Path(pattern=B32), fed=Depends(federation)):
    """One pending proposal's terms, for the treasurer to check and sign (no signature shown)."""
    return {**fed.node.proposal(allianceId), "status": "proposed"}


# --- treasurer actions -------------------------------------------------------------------------

class ProposeIn(Strict):
    terms: dict[str, Any] = Field(description="Alliance terms (docs/federation.md), this community on one side")
    signature: str = Field(description="EIP-712 signature of the terms by a treasurer of this community")


class AcceptIn(Strict):
    signature: str = Field(description="EIP-712 signature of the proposed terms by a treasurer of this community")


class StatusIn(Strict):
    message: dict[str, Any] = Field(description="AllianceStatus {allianceId, status, nonce, validUntil}")
    signature: str = Field(description="EIP-712 signature by a treasurer of this community")


def _deliver_note(fed, url: str, path: str, body: dict) -> dict:
    try:
        fed.transport.send(url, path, body)
        return {"delivered": True}
    except TransportError as exc:  # recorded here all the same; the operator re-sends with the CLI
        return {"delivered": False, "deliveryError": str(exc)}


@router.post("/v1/federation/alliances", status_code=201)
def propose(body: ProposeIn, fed=Depends(federation)):
    """A treasurer proposes terms; the node forwards them to the peer node."""
    proposal = fed.node.propose(body.terms, body.signature)
    peer_url = fed.peer_url_of_terms(body.terms)
    return JSONResponse({"allianceId": fed.alliance_id_of_terms(body.terms), "status": "proposed",
                         "proposal": proposal, **_deliver_note(fed, peer_url, PROPOSALS_PATH, proposal)},
                        status_code=201)


@router.post("/v1/federation/alliances/{allianceId}/accept", status_code=201)
def accept(body: AcceptIn, allianceId: str = Path(pattern=B32), fed=Depends(federation)):
    """A treasurer accepts a pending proposal: recorded here, then the proposer is told."""
    message = fed.node.accept(allianceId, body.signature)
    peer_url = fed.peer_url_of_alliance(allianceId)
    return JSONResponse({"allianceId": allianceId.lower(), "status": "active",
                         **_deliver_note(fed, peer_url, ACCEPTANCES_PATH, message)}, status_code=201)


@router.post("/v1/federation/alliances/{allianceId}/status", status_code=201)
def set_status(body: StatusIn, allianceId: str = Path(pattern=B32), fed=Depends(federation)):
    if str(body.message.get("allianceId", "")).lower() != allianceId.lower():
        raise E.InvalidInput("the signed message names another alliance than the URL")
    return JSONResponse(fed.node.set_status(body.message, body.signature), status_code=201)


# --- the payer ---------------------------------------------------------------------------------

class RemoteTransferMessage(Strict):
    payer: str = Field(examples=["0x0c6C78f7274A93b337Fe4177034D8aDCe9Dd1807"])
    payeeCommunity: str = Field(pattern=B32, description="the payee's community id (its EIP-712 salt)")
    payee: str = Field(examples=["0xF2b142AC2987e5a86AfFC2b952628FcdC3d0AbfA"])
    currency: str = Field(examples=["HOUR"], description="debited here")
    amount: Uint = Field(description="minor units debited here", examples=[90])
    payeeCurrency: str = Field(examples=["HOUR"], description="delivered there")
    delivered: Uint = Field(description="minor units delivered there, at the alliance's rate", examples=[90])
    nonce: Uint = Field(description="any unused number of the payer, as a decimal string", examples=["1"])
    validUntil: Uint = Field(description="unix seconds", examples=["1893456000"])
    memoHash: str = Field(ZERO32, description="keccak256(salt ‖ utf8(memo)) or zero")


class PostRemoteTransfer(Strict):
    message: RemoteTransferMessage
    signature: str = Field(description="65-byte EIP-712 RemoteTransfer signature by the payer, 0x hex")
    memo: str | None = Field(None, max_length=500, description="kept off the log, here only; erasable")
    memoSalt: str | None = Field(None, description="the 32-byte salt of memoHash, 0x hex")

    model_config = ConfigDict(extra="forbid")


def _leg_view(leg: dict) -> dict:
    """What the payer's client sees: the state and the two amounts, no one's address."""
    keep = ("paymentId", "state", "code", "amount", "currency", "delivered", "payeeCurrency", "side")
    return {k: leg[k] for k in keep if k in leg}


@router.post("/v1/remote-transfers", status_code=201,
             responses={202: {"description": "prepared, the decision is still pending: poll "
                                             "GET /v1/remote-transfers/{paymentId}"}})
async def post_remote_transfer(body: PostRemoteTransfer, fed=Depends(federation)):
    """Pay a member of an allied community: 201 once committed on this node (the payee's node
    is then bound to credit it), 202 if still undecided after a short wait, 4xx if refused
    here or by the payee's node (its code)."""
    def submit_and_send() -> dict:  # one threadpool hop for the whole blocking part
        submitted = fed.node.submit(body.message.model_dump(), body.signature, body.memo, body.memoSalt)
        if submitted.get("state") != "prepared":
            return submitted
        return send_payment_now(fed.transport, submitted, wait_s=WAIT_FOR_DECISION_S)

    return _decision_response(await run_in_threadpool(submit_and_send))


def _decision_response(leg: dict) -> JSONResponse:
    state = leg.get("state")
    if state == "committed":
        return JSONResponse(_leg_view(leg), status_code=201)
    if state == "aborted":
        code = leg.get("code") or "remote_payment_aborted"
        raise E.LedgerError(f"the payment was not made: {code}", code=code)
    return JSONResponse(_leg_view(leg), status_code=202)


@router.get("/v1/remote-transfers/{paymentId}")
def get_remote_transfer(paymentId: str = Path(pattern=B32), fed=Depends(federation)):
    """The state of a remote payment on this node (the paymentId is the payer's digest)."""
    return _leg_view(fed.node.payment(paymentId))
