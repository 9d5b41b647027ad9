"""Cooperatives that split and ally again (issue 15): after their alliance has ENDED on both
sides and nothing is in flight under it, a new alliance (a new id) is proposed, recorded in
both logs and used; the peer account is the same one (what was owed stays owed); the ended
alliance's legs still verify. While an earlier alliance is only suspended, a second one is
refused (`alliance_not_ended`), and while payments under the ended one are still prepared,
recording waits (`payments_in_flight`). Real ledgers on SQLite and PostgreSQL (the `pair`
fixture: A on each database, B on SQLite), through the FederationNode API; both logs replay,
`ayni verify` passes and `ayni-wallet reconcile-peer` reconciles the whole history."""
from __future__ import annotations

import json
import random

from typer.testing import CliRunner

from ledger.core import fold
from ledger.core.codec import hex0x
from ledger.core.federation import CurrencyPair, peer_address
from ledger.log_export import export_log
from tests.test_federation_ledger import (Net, _check_quiescent, _pay_and_settle, _refused, _status, _terms,
                                          _treasurer_sig, ally, pair, remote)

__all__ = ["pair"]  # the fixture, imported for pytest

HOUR_ONLY = [CurrencyPair.create(currency_a="HOUR", currency_b="HOUR", units_a=1, units_b=1, limit_a=300,
                                 limit_b=250)]


def _settle(a, b, net, *outs):
    _pay_and_settle(a, b, net, [(None, r["outbox"]) for r in outs])
    return {r["paymentId"] for r in outs}


def test_an_ended_alliance_makes_room_for_a_new_one_that_reuses_the_peer_account(pair, tmp_path):
    a, b, _clock = pair
    first = ally(a, b)
    net = Net(a, b, random.Random(3))
    committed = _settle(a, b, net, a.node.submit(*remote(a, "ana", b, "bea", 90)),
                        b.node.submit(*remote(b, "cho", a, "bea", 30, "CRED")))  # 45 CRED at A
    peer_of_b, peer_of_a = peer_address(b.community), peer_address(a.community)
    owed = (a.ledger.positions(peer_of_b)[(peer_of_b, "HOUR")].balance,
            a.ledger.positions(peer_of_b)[(peer_of_b, "CRED")].balance)
    assert owed == (90, -45)

    second = _terms(a, b, pairs=HOUR_ONLY, nonce=2)
    propose = lambda: a.node.propose(second.message(), _treasurer_sig(a, second, "A"))
    # suspended is not ended: it may resume, so a second alliance is refused on the proposing side
    a.node.set_status(*_status(a, first, "suspended", 11))
    _refused(a, "alliance_not_ended", propose)
    a.node.set_status(*_status(a, first, "ended", 12))
    # a payment B started before ending its side stays prepared at B for now (never delivered)
    stuck = b.node.submit(*remote(b, "ana", a, "cho", 7))
    # ... and while B's side is still active, B refuses the proposal: nothing kept pending
    proposal = propose()
    _refused(b, "alliance_not_ended", lambda: b.node.receive_proposal(proposal))
    assert b.node.proposals() == []
    b.node.set_status(*_status(b, first, "ended", 13))
    assert b.node.receive_proposal(proposal)["status"] == "proposed"
    # B's payment under the ended alliance is in flight: B's treasurer cannot record yet
    accept = lambda: b.node.accept(hex0x(second.alliance_id), _treasurer_sig(b, second, "B"))
    _refused(b, "payments_in_flight", accept)
    assert [p["allianceId"] for p in b.node.proposals()] == [hex0x(second.alliance_id)]
    _settle(a, b, net, stuck)  # A refuses it (its side has ended): B aborts
    assert b.node.payment(stuck["paymentId"])["state"] == "aborted"
    assert b.node.payment(stuck["paymentId"])["code"] == "alliance_not_active"
    assert a.node.receive_acceptance(accept())["status"] == "active"

    for side in (a, b):
        listed = {x["allianceId"]: x for x in side.node.alliances()}
        assert {k: v["status"] for k, v in listed.items()} == {hex0x(first.alliance_id): "ended",
                                                              hex0x(second.alliance_id): "active"}
        assert len({v["peerAccount"] for v in listed.values()}) == 1  # one peer account, reused
    # what was owed stays owed; the new pair sets the HOUR limit (A risks 300 on B, B 250 on A)
    hour_b = a.ledger.positions(peer_of_b)[(peer_of_b, "HOUR")]
    assert (hour_b.balance, hour_b.credit_limit) == (90, 300)
    assert a.ledger.positions(peer_of_b)[(peer_of_b, "CRED")].balance == -45
    assert b.ledger.positions(peer_of_a)[(peer_of_a, "HOUR")].credit_limit == 250

    # the wallet pays under the alliance in force, whatever the listing's order
    from wallet_cli.remote_pay import alliance_with

    class Listing:  # GET /v1/federation/alliances as api/routers/federation.py builds it, minus HTTP
        def get(self, path, auth=True):
            return {"items": a.node.alliances() + a.node.proposals()}
    assert alliance_with(Listing(), b.community)["allianceId"] == hex0x(second.alliance_id)

    # the new alliance carries payments both ways; CRED no longer crosses
    committed |= _settle(a, b, net, a.node.submit(*remote(a, "bea", b, "ana", 20)),
                         b.node.submit(*remote(b, "bea", a, "ana", 12)))
    _refused(a, "unknown_currency", lambda: a.node.submit(*remote(a, "ana", b, "bea", 30, "CRED")))
    assert {a.node.payment(p)["allianceId"] for p in committed} == {hex0x(first.alliance_id),
                                                                    hex0x(second.alliance_id)}
    assert a.ledger.positions(peer_of_b)[(peer_of_b, "HOUR")].balance == 90 + 20 - 12

    # a third alliance while the second is active, or suspended, is refused
    third = _terms(a, b, pairs=HOUR_ONLY, nonce=3)
    _refused(a, "alliance_not_ended", lambda: a.node.propose(third.message(), _treasurer_sig(a, third, "A")))
    a.node.set_status(*_status(a, second, "suspended", 14))
    _refused(a, "alliance_not_ended", lambda: a.node.propose(third.message(), _treasurer_sig(a, third, "A")))

    # both logs replay alone (the ended alliance's legs re-checked with its own node keys) ...
    _check_quiescent(a, b, committed)
    for side, legs in ((a, 4), (b, 5)):  # the aborted payment A refused wrote nothing at A
        state = fold.replay(side.ledger.iter_entries())
        assert set(state.alliances) == {first.alliance_id, second.alliance_id}
        assert len(state.legs) == legs
    # ... `ayni verify` passes on each, and reconcile-peer reconciles the two whole histories
    from ledger.cli import app as ayni
    from wallet_cli.main import app as wallet
    for side in (a, b):
        r = CliRunner().invoke(ayni, ["verify", "--db", side.url, "--json"])
        assert r.exit_code == 0 and json.loads(r.stdout)["ok"], r.stdout
    exports = {}
    for side, name in ((a, "a"), (b, "b")):
        exports[name] = tmp_path / f"{name}.jsonl"
        export_log(side.ledger, exports[name])
    r = CliRunner().invoke(wallet, ["reconcile-peer", "--log", str(exports["a"]), "--peer-log", str(exports["b"]),
                                    "--json"])
    assert r.exit_code == 0, r.stdout
    report = json.loads(r.stdout)
    assert report["ok"] and report["paymentsChecked"] == 5 and report["inFlight"] == 0, report
