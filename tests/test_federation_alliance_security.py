"""An outside reviewer's attacks on alliance proposals (issue 15), each one refused:

- re-posting a pending proposal's terms with another signature replaced the proposer's signature,
  so the alliance the accepting node recorded could never be recorded by the proposer;
- the public listing showed pending proposals' full terms;
- the proposals endpoint took unlimited writes;
- the node-to-node sender called the peer's 201 a failed delivery;
- a payment presumed aborted answered HTTP 400 with a code no status was chosen for.
Real ledgers (SQLite/PostgreSQL), real signatures, the real API over its ASGI client."""
from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from api.app import Settings, create_app
from api.errors import status_for
from api.routers.federation import _decision_response
from ledger import signing
from ledger.core import errors as E
from ledger.core.codec import hex0x
from ledger.core.federation import NodeMessage, sign_node_message
from ledger.core.typed_data import sign_digest
from ledger.federation import node as node_module
from ledger.federation.driver import PROPOSALS_PATH, Transport, http_sender
from ledger.federation.runtime import Federation
from tests.test_federation_ledger import _terms, _treasurer_sig, ally, pair  # noqa: F401 (the fixture)

B_URL = "http://testserver"


def _proposal(a, b, **kw):
    terms = _terms(a, b, **kw)
    return terms, a.node.propose(terms.message(), _treasurer_sig(a, terms, "A"))


def _pending_signature(side, alliance_id: bytes) -> str:
    with side.ledger.unit_of_work(readonly=True) as uow:
        return uow.proposal(alliance_id).proposer_signature


def test_a_proposal_cannot_be_re_signed_by_anyone_but_the_proposing_node(pair):
    a, b, _ = pair
    terms, proposal = _proposal(a, b)
    assert b.node.receive_proposal(proposal)["status"] == "proposed"
    stored = _pending_signature(b, terms.alliance_id)
    attacker = signing.new_key()
    forged = sign_digest(attacker, terms.domain("A").digest(terms.struct_hash()))
    # the reviewer's attack: the same terms with the attacker's signature and no node signature
    bare = {"terms": proposal["terms"], "side": "A", "signature": forged}
    with pytest.raises(E.InvalidInput):
        b.node.receive_proposal(bare)
    # ... with the proposing node's `propose` message copied: still not the stored signatures
    with pytest.raises(E.ProposalConflict):
        b.node.receive_proposal({**proposal, "signature": forged})
    # ... with a `propose` message the attacker signs itself: not the node the terms name
    nm = NodeMessage.create(alliance_id=terms.alliance_id, payment_id=terms.alliance_id, kind="propose",
                            at=a.clock())
    own = {**bare, "nodeMessage": nm.message(), "nodeSignature": sign_node_message(attacker, a.c.domain, nm)}
    with pytest.raises(E.WrongNodeSignature):
        b.node.receive_proposal(own)
    assert _pending_signature(b, terms.alliance_id) == stored
    # the genuine proposal again is idempotent; the alliance is then recorded on both nodes
    assert b.node.receive_proposal(proposal)["status"] == "proposed"
    acceptance = b.node.accept(hex0x(terms.alliance_id), _treasurer_sig(b, terms, "B"))
    assert a.node.receive_acceptance(acceptance)["status"] == "active"
    assert [x["status"] for x in a.node.alliances()] == [x["status"] for x in b.node.alliances()] == ["active"]


def test_pending_proposals_are_capped_per_community_until_they_lapse(pair, monkeypatch):
    a, b, clock = pair
    monkeypatch.setattr(node_module, "MAX_PENDING_PER_COMMUNITY", 2)
    short = replace(_terms(a, b, nonce=1), valid_until=clock.now // 1000 + 10)
    for terms in (short, _terms(a, b, nonce=2)):
        b.node.receive_proposal(a.node.propose(terms.message(), _treasurer_sig(a, terms, "A")))
    _, third = _proposal(a, b, nonce=3)
    with pytest.raises(E.TooManyProposals):
        b.node.receive_proposal(third)
    assert status_for("too_many_proposals") == 429 and status_for("proposal_conflict") == 409
    assert len(b.node.proposals()) == 2
    clock.now += 20_000  # the short-lived offer lapsed: it makes room
    _, third = _proposal(a, b, nonce=3)
    assert b.node.receive_proposal(third)["status"] == "proposed"
    assert hex0x(short.alliance_id) not in [p["allianceId"] for p in b.node.proposals()]


def _app(side, tmp_path, **limits):
    fed = Federation(node=side.node, transport=Transport(side.node), public_url=B_URL)
    settings = Settings(db_url=side.url, secret_file=str(tmp_path / f"{side.c.ledger.genesis.community}.key"),
                        rate_limits=limits)
    return create_app(side.ledger, settings, federation=fed)


def test_the_public_listing_hides_pending_terms_and_the_endpoint_is_rate_limited(pair, tmp_path):
    a, b, _ = pair
    terms, proposal = _proposal(a, b)
    with TestClient(_app(b, tmp_path, proposal_per_client="2/minute")) as client:
        assert client.post(PROPOSALS_PATH, json=proposal).status_code == 201
        (item,) = client.get("/v1/federation/alliances").json()["items"]
        assert item["status"] == "proposed" and "terms" not in item and "signature" not in str(item)
        assert item["peerNode"] == a.node.address and item["peerCommunity"] == hex0x(a.community)
        one = client.get(f"/v1/federation/alliances/proposals/{hex0x(terms.alliance_id)}").json()
        assert one["terms"] == proposal["terms"] and "signature" not in one
        assert client.post(PROPOSALS_PATH, json=proposal).status_code == 201  # idempotent
        r = client.post(PROPOSALS_PATH, json=proposal)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"


def test_the_node_sender_takes_a_201_as_delivered(pair, tmp_path):
    a, b, _ = pair
    _, proposal = _proposal(a, b)
    with TestClient(_app(b, tmp_path)) as client:
        reply = http_sender(client)(B_URL, PROPOSALS_PATH, proposal)
    assert reply["status"] == "proposed"


def test_a_payment_presumed_aborted_answers_504_timeout():
    with pytest.raises(E.LedgerError) as exc:
        _decision_response({"state": "aborted", "code": "timeout"})
    assert exc.value.code == "timeout" and status_for("timeout") == 504


def _forged_acceptance(b, attacker: bytes, nonce: int = 1) -> dict:
    """Review 15 D1: terms naming B's community and node, with the attacker's own key as the
    other node; the `alliance-recorded` message verifies against that key."""
    import os

    from ledger.core.federation import Alliance, CurrencyPair
    from ledger.core.records import alliance_terms_body
    from ledger.core.typed_data import address_of_key
    al = Alliance.create(community_a=os.urandom(32), chain_id_a=1, node_a=address_of_key(attacker),
                         url_a="http://127.0.0.1:9", community_b=b.community, chain_id_b=b.c.domain.chain_id,
                         node_b=b.node.address, url_b="http://127.0.0.1:9",
                         pairs=[CurrencyPair.create(currency_a="HOUR", currency_b="HOUR", units_a=1, units_b=1,
                                                    limit_a=10, limit_b=10)], nonce=nonce, valid_until=2**40)
    nm = NodeMessage.create(alliance_id=al.alliance_id, payment_id="0x" + "00" * 32, kind="alliance-recorded",
                            at=b.clock())
    sig = sign_digest(attacker, al.domain("A").digest(al.struct_hash()))
    return {"message": nm.message(), "signature": sign_digest(attacker, al.domain("A").digest(nm.struct_hash())),
            "terms": alliance_terms_body(al), "signatureA": sig, "signatureB": sig}


def test_a_forged_acceptance_is_refused_without_the_node_lock_or_a_write(pair):
    """It used to take the node's lock and a write transaction (the head lock) before the fold
    refused it: a flood of them stalled every payment. Now this community's treasurer signature
    of the terms is checked first: refused while another thread holds the lock."""
    import threading
    a, b, _ = pair
    forged = _forged_acceptance(b, signing.new_key())
    seq = b.ledger.head()[0]
    held, release, outcome = threading.Event(), threading.Event(), []

    def hold_the_lock():
        with b.node._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait(5)

    def receive():
        try:
            b.node.receive_acceptance(forged)
        except E.LedgerError as exc:
            outcome.append(exc.code)

    t = threading.Thread(target=receive)
    t.start()
    t.join(5)
    refused_while_locked = not t.is_alive()
    release.set()
    holder.join(5)
    t.join(5)
    assert refused_while_locked and outcome == ["not_authorised"]
    assert b.node.alliances() == []
    assert b.ledger.head()[0] == seq  # nothing written
    # inside a batch it is refused by its kind (it goes to the acceptances endpoint), alone
    (result,) = b.node.receive({"messages": [forged]})["results"]
    assert result["error"]["code"] == "invalid_input" and "acceptances" in result["error"]["message"]
    # the genuine acceptance still records the alliance, once
    ally(a, b)
    assert [x["status"] for x in a.node.alliances()] == ["active"]


def test_the_node_message_and_acceptance_endpoints_are_rate_limited_per_client(pair, tmp_path):
    _, b, _ = pair
    forged = _forged_acceptance(b, signing.new_key())
    app = _app(b, tmp_path, node_messages_per_client="2/minute", acceptance_per_client="1/minute")
    with TestClient(app) as client:
        for _ in range(2):
            r = client.post("/v1/federation/messages", json={"messages": [forged]})
            assert r.status_code == 200 and r.json()["results"][0]["error"]["code"] == "invalid_input"
        r = client.post("/v1/federation/messages", json={"messages": [forged]})
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        r = client.post("/v1/federation/alliances/acceptances", json=forged)
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_authorised"
        r = client.post("/v1/federation/alliances/acceptances", json=forged)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
