"""ledger.core.federation: EIP-712 types checked against independent encoders (eth-account,
the generic encoder, ethers.js when node is available), and every rule and error code."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings, strategies as st

from ledger.core import eip712
from ledger.core import errors as E
from ledger.core import federation as F
from ledger.core.hashing import ZERO32, keccak256
from ledger.core.rules import AccountState
from ledger.core.typed_data import Domain, address_of_key, recover_signer, sign_action

ROOT = Path(__file__).resolve().parent.parent
SIGN_SCRIPT = ROOT / "tests" / "js" / "sign_ethers.js"
ETHERS_PACKAGE = ROOT / "node_modules" / "ethers" / "package.json"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

COMMUNITY_A, COMMUNITY_B = keccak256(b"coop A"), keccak256(b"coop B")
NODE_A_KEY, NODE_B_KEY = keccak256(b"node A key"), keccak256(b"node B key")
TREASURER_A_KEY, PAYER_KEY = keccak256(b"treasurer A"), keccak256(b"payer")
PAYER, PAYEE = address_of_key(PAYER_KEY), address_of_key(keccak256(b"payee"))
HOUR_PAIR = F.CurrencyPair.create(currency_a="HOUR", currency_b="HOUR", units_a=1, units_b=1, limit_a=600,
                                  limit_b=600)
CRED_PAIR = F.CurrencyPair.create(currency_a="CREDA", currency_b="CREDB", units_a=3, units_b=2, limit_a=10_000,
                                  limit_b=5_000)
ALLIANCE = F.Alliance.create(
    community_a=COMMUNITY_A, chain_id_a=31337, node_a=address_of_key(NODE_A_KEY), url_a="https://a.example/ayni",
    community_b=COMMUNITY_B, chain_id_b=100, node_b=address_of_key(NODE_B_KEY), url_b="http://127.0.0.1:8081",
    pairs=[HOUR_PAIR, CRED_PAIR], nonce=7, valid_until=1893456000)
DOMAIN_A, DOMAIN_B = ALLIANCE.domain("A"), ALLIANCE.domain("B")
AT_A, AT_B = F.AllianceView(ALLIANCE, "A"), F.AllianceView(ALLIANCE, "B")
NOW = 1_800_000_000_000


def transfer(**over) -> F.RemoteTransfer:
    fields = dict(payer=PAYER, payee_community=COMMUNITY_B, payee=PAYEE, currency="CREDA", amount=300,
                  payee_currency="CREDB", delivered=200, nonce=1, valid_until=1893456000,
                  memo_hash=keccak256(b"bread"))
    fields.update(over)
    return F.RemoteTransfer.create(**fields)


def node_message(**over) -> F.NodeMessage:
    fields = dict(alliance_id=ALLIANCE.alliance_id, payment_id=keccak256(b"p1"), kind="prepared", code="", at=NOW)
    fields.update(over)
    return F.NodeMessage.create(**fields)


ACTIONS = [ALLIANCE, replace(ALLIANCE, pairs=(HOUR_PAIR,)), HOUR_PAIR,
           F.AllianceStatus.create(alliance_id=ALLIANCE.alliance_id, status="suspended", nonce=2**200, valid_until=5),
           transfer(), transfer(nonce=2**256 - 1, valid_until=2**64 - 1, memo_hash=ZERO32),
           node_message(), node_message(kind="refused", code="peer_limit_reached", at=2**64 - 1)]


# --- hashing: three independent encoders -------------------------------------------------------

def _documented_types() -> dict[str, str]:
    """The type strings published in docs/federation.md (one per line in its code blocks)."""
    doc = (ROOT / "docs" / "federation.md").read_text(encoding="utf-8")
    found = {}
    for block in re.findall(r"^ *```\n(.*?)^ *```", doc, flags=re.M | re.S):
        for line in block.splitlines():
            m = re.fullmatch(r"([A-Z][A-Za-z]*)\([^ ()]+ [A-Za-z0-9]+(?:,[^ ()]+ [A-Za-z0-9]+)*\)(?:[A-Z].*)?",
                             line.strip())
            if m:
                found[m.group(1)] = line.strip()
    return found


def test_type_strings_are_the_documented_ones():
    assert _documented_types() == {
        "CurrencyPair": F.CURRENCY_PAIR_TYPE, "Alliance": F.ALLIANCE_TYPE, "AllianceStatus": F.ALLIANCE_STATUS_TYPE,
        "RemoteTransfer": F.REMOTE_TRANSFER_TYPE, "NodeMessage": F.NODE_MESSAGE_TYPE}
    # EIP-712 encodeType appends referenced struct types: the generic encoder derives the same string
    assert eip712.encode_type(F.EIP712_TYPES, "Alliance") == F.ALLIANCE_TYPE
    assert F.ALLIANCE_TYPE.endswith(")" + F.CURRENCY_PAIR_TYPE)


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.PRIMARY)
@pytest.mark.parametrize("domain", [DOMAIN_A, DOMAIN_B])
def test_hashing_equals_eth_account_and_the_generic_encoder(action, domain):
    doc = F.full_message(domain, action)
    signable = encode_typed_data(full_message=doc)
    assert signable.header == domain.separator
    assert signable.body == action.struct_hash()
    assert eip712.digest(doc) == domain.digest(action.struct_hash())
    # and a signature eth-account makes from the document recovers with ours
    signed = Account.sign_typed_data(PAYER_KEY, full_message=doc)
    assert recover_signer(domain.digest(action.struct_hash()), signed.signature) == PAYER


def test_struct_array_is_keccak_of_concatenated_struct_hashes():
    pairs = keccak256(HOUR_PAIR.struct_hash() + CRED_PAIR.struct_hash())
    expected = keccak256(keccak256(F.ALLIANCE_TYPE.encode()) + COMMUNITY_A + (31337).to_bytes(32, "big")
                         + bytes(12) + bytes.fromhex(ALLIANCE.node_a[2:]) + keccak256(ALLIANCE.url_a.encode())
                         + COMMUNITY_B + (100).to_bytes(32, "big") + bytes(12) + bytes.fromhex(ALLIANCE.node_b[2:])
                         + keccak256(ALLIANCE.url_b.encode()) + pairs + (7).to_bytes(32, "big")
                         + (1893456000).to_bytes(32, "big"))
    assert ALLIANCE.struct_hash() == expected == F.alliance_id(ALLIANCE)
    swapped = replace(ALLIANCE, pairs=(CRED_PAIR, HOUR_PAIR))
    assert swapped.alliance_id != ALLIANCE.alliance_id  # order is part of the signed terms


currencies = st.from_regex(r"[A-Z][A-Z0-9]{1,11}", fullmatch=True)
amounts = st.integers(1, 2**53 - 1)
b32 = st.binary(min_size=32, max_size=32)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(currencies, currencies, amounts, amounts, st.integers(0, 2**53 - 1)), min_size=1,
                max_size=4, unique_by=(lambda t: t[0], lambda t: t[1])), st.integers(0, 2**256 - 1),
       st.integers(0, 2**64 - 1), b32, st.integers(1, 2**64))
def test_any_alliance_hashes_like_eth_account(pairs, nonce, valid_until, salt, chain_id):
    alliance = replace(ALLIANCE, pairs=tuple(F.CurrencyPair.create(currency_a=a, currency_b=b, units_a=x, units_b=y,
                                                                   limit_a=lim, limit_b=lim)
                                             for a, b, x, y, lim in pairs), nonce=nonce, valid_until=valid_until)
    domain = Domain(chain_id=chain_id, salt=salt)
    signable = encode_typed_data(full_message=F.full_message(domain, alliance))
    assert (signable.header, signable.body) == (domain.separator, alliance.struct_hash())


def test_from_message_round_trips():
    assert F.Alliance.from_message(ALLIANCE.message()) == ALLIANCE
    assert F.RemoteTransfer.from_message(transfer().message()) == transfer()
    assert F.NodeMessage.from_message(node_message().message()) == node_message()
    # JSON clients send big integers as decimal strings
    m = json.loads(json.dumps({k: str(v) if isinstance(v, int) else v for k, v in transfer().message().items()}))
    assert F.RemoteTransfer.from_message(m) == transfer()


@pytest.fixture(scope="module")
def node():
    exe = shutil.which("node")
    problem = None if exe else "node is not on PATH"
    if exe and not ETHERS_PACKAGE.is_file():
        problem = "node_modules/ethers is missing (run `npm ci`)"
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but {problem}")
        warnings.warn(f"SKIPPING ethers.js federation interop: {problem}")
        pytest.skip(problem)
    return exe


def _js(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)  # JSON numbers above 2^53 would be rounded before ethers saw them
    if isinstance(value, dict):
        return {k: _js(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js(v) for v in value]
    return value


def test_ethers_hashes_and_signs_every_federation_type(node):
    """ethers v6 (TypedDataEncoder / Wallet.signTypedData) through tests/js/sign_ethers.js:
    same encodeType (with CurrencyPair appended), struct hash, digest and signature."""
    requests = []
    for action in ACTIONS:
        doc = F.full_message(DOMAIN_A, action)
        requests.append({"privateKey": "0x" + TREASURER_A_KEY.hex(), "domain": _js(doc["domain"]),
                         "types": {k: v for k, v in doc["types"].items() if k != "EIP712Domain"},
                         "primaryType": doc["primaryType"], "message": _js(doc["message"])})
    proc = subprocess.run([node, str(SIGN_SCRIPT)], input=json.dumps(requests), cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for action, out in zip(ACTIONS, json.loads(proc.stdout)):
        documented = {"CurrencyPair": F.CURRENCY_PAIR_TYPE, "Alliance": F.ALLIANCE_TYPE,
                      "AllianceStatus": F.ALLIANCE_STATUS_TYPE, "RemoteTransfer": F.REMOTE_TRANSFER_TYPE,
                      "NodeMessage": F.NODE_MESSAGE_TYPE}[action.PRIMARY]
        assert out["primaryType"] == action.PRIMARY
        assert out["encodedType"] == documented
        assert out["structHash"] == "0x" + action.struct_hash().hex()
        assert out["digest"] == "0x" + DOMAIN_A.digest(action.struct_hash()).hex()
        assert out["signature"] == sign_action(TREASURER_A_KEY, DOMAIN_A, action)


# --- building from untrusted values --------------------------------------------------------------

@pytest.mark.parametrize("over,match", [
    ({"pairs": []}, "between 1 and"),
    ({"pairs": [HOUR_PAIR, replace(CRED_PAIR, currency_a="HOUR")]}, "currencyA repeats"),
    ({"pairs": [HOUR_PAIR, replace(CRED_PAIR, currency_b="HOUR")]}, "currencyB repeats"),
    ({"pairs": [{"currencyA": "HOUR"}]}, "lacks"),
    ({"pairs": [{**HOUR_PAIR.message(), "unitsA": 0}]}, "unitsA"),
    ({"community_b": COMMUNITY_A}, "two different communities"),
    ({"node_b": address_of_key(NODE_A_KEY)}, "nodeA and nodeB must differ"),
    ({"url_a": "ftp://a.example"}, "urlA"),
    ({"url_b": "https://b.example/\x1b[2J"}, "urlB"),
    ({"url_b": "https://b.example/?q=1"}, "urlB"),
    ({"community_a": "0x12"}, "communityA"),
    ({"valid_until": 2**64}, "validUntil"),
])
def test_malformed_alliance_terms_are_refused(over, match):
    fields = dict(community_a=COMMUNITY_A, chain_id_a=1, node_a=ALLIANCE.node_a, url_a="https://a.example",
                  community_b=COMMUNITY_B, chain_id_b=1, node_b=ALLIANCE.node_b, url_b="https://b.example",
                  pairs=[HOUR_PAIR], nonce=1, valid_until=1)
    fields.update(over)
    with pytest.raises(E.InvalidInput, match=match):
        F.Alliance.create(**fields)


@pytest.mark.parametrize("over,error", [
    ({"amount": 0}, E.InvalidAmount), ({"delivered": 0}, E.InvalidAmount), ({"delivered": 2**53}, E.InvalidAmount),
    ({"currency": "creda"}, E.InvalidInput), ({"payee_currency": "X"}, E.InvalidInput),
    ({"payee": "0x12"}, E.InvalidAddress), ({"payee_community": "0x00"}, E.InvalidInput),
    ({"nonce": -1}, E.InvalidInput),
])
def test_malformed_remote_transfers_are_refused(over, error):
    with pytest.raises(error):
        transfer(**over)


@pytest.mark.parametrize("over", [{"kind": "commit!"}, {"kind": "query"}, {"code": "Bad Code"},
                                  {"code": "x" * 65}, {"at": -1}])
def test_malformed_node_messages_are_refused(over):
    with pytest.raises(E.InvalidInput):
        node_message(**over)


def test_alliance_status_changes():
    with pytest.raises(E.InvalidInput):
        F.AllianceStatus.create(alliance_id=ALLIANCE.alliance_id, status="paused", nonce=1, valid_until=1)
    F.check_alliance_status_change("active", "suspended")
    F.check_alliance_status_change("suspended", "active")
    F.check_alliance_status_change("suspended", "ended")
    with pytest.raises(E.InvalidTransition, match="final"):
        F.check_alliance_status_change("ended", "active")
    with pytest.raises(E.InvalidTransition, match="already"):
        F.check_alliance_status_change("active", "active")


# --- peer accounts and rates ---------------------------------------------------------------------

def test_peer_address_is_a_checksummed_keyless_address_per_community():
    a = F.peer_address(COMMUNITY_A)
    assert a.lower() == "0x" + keccak256(b"ayni.peer" + COMMUNITY_A)[-20:].hex()
    assert a != a.lower() and F.peer_address(COMMUNITY_A) == a and F.peer_address(COMMUNITY_B) != a
    assert AT_A.peer_account == F.peer_address(COMMUNITY_B) and AT_B.peer_account == a
    with pytest.raises(E.InvalidInput):
        F.peer_address(b"short")


def test_delivered_rounds_down_in_both_directions():
    # CREDA 3 : 2 CREDB
    assert F.delivered_for(300, CRED_PAIR, "AB") == 200
    assert F.delivered_for(301, CRED_PAIR, "AB") == 200  # 200.67 -> 200: never more than was paid
    assert F.delivered_for(1, CRED_PAIR, "AB") == 0
    assert F.delivered_for(200, CRED_PAIR, "BA") == 300
    assert F.delivered_for(201, CRED_PAIR, "BA") == 301  # 301.5 -> 301
    assert F.delivered_for(45, HOUR_PAIR, "BA") == 45
    with pytest.raises(E.InvalidInput):
        F.delivered_for(5, CRED_PAIR, "BB")
    with pytest.raises(E.InvalidAmount):
        F.delivered_for(0, CRED_PAIR, "AB")


def test_check_rate():
    F.check_rate(transfer(), CRED_PAIR, "AB")
    with pytest.raises(E.RateMismatch, match="delivers 200"):
        F.check_rate(transfer(delivered=201), CRED_PAIR, "AB")
    with pytest.raises(E.RateMismatch, match="too small"):
        F.check_rate(transfer(amount=1, delivered=1), CRED_PAIR, "AB")
    with pytest.raises(E.RateMismatch, match="not the pair"):
        F.check_rate(transfer(payee_currency="HOUR"), CRED_PAIR, "AB")
    with pytest.raises(E.RateMismatch, match="not the pair"):  # right pair, wrong direction
        F.check_rate(transfer(), CRED_PAIR, "BA")
    assert E.RateMismatch.code == "rate_mismatch"


# --- holds ------------------------------------------------------------------------------------------

MEMBER = AccountState(PAYER, "member", "active")
PAYEE_ACCT = AccountState(PAYEE, "member", "active")


def pos(balance=0, limit=1000, ceiling=None, held_out=0, held_in=0) -> F.HeldPosition:
    return F.HeldPosition(balance, limit, ceiling, held_out, held_in)


def prepare_out(t=None, *, view=AT_A, payer=MEMBER, payer_pos=None, now=NOW):
    return F.check_prepare_out(t or transfer(), now_ms=now, view=view, payer=payer,
                               payer_pos=pos() if payer_pos is None else payer_pos)


def test_prepare_out_holds_the_amount():
    assert prepare_out(payer_pos=pos(balance=50, held_out=100)) == pos(balance=50, held_out=400)


@pytest.mark.parametrize("kwargs,error,code", [
    ({"view": None}, E.UnknownAlliance, "unknown_alliance"),
    ({"view": AT_B}, E.UnknownAlliance, "unknown_alliance"),  # the payee's community is not our peer
    ({"view": replace(AT_A, status="suspended")}, E.AllianceNotActive, "alliance_not_active"),
    ({"view": replace(AT_A, status="ended")}, E.AllianceNotActive, "alliance_not_active"),
    ({"t": transfer(delivered=199)}, E.RateMismatch, "rate_mismatch"),
    ({"t": transfer(currency="CRED")}, E.UnknownCurrency, "unknown_currency"),
    ({"now": 1893456001_000}, E.Expired, "expired"),
    ({"payer": None}, E.UnknownAccount, "unknown_account"),
    ({"payer": replace(MEMBER, status="frozen")}, E.AccountNotActive, "account_not_active"),
    ({"payer": replace(MEMBER, role="auditor")}, E.NotAuthorised, "not_authorised"),
    ({"payer": replace(MEMBER, role="peer")}, E.NotAuthorised, "not_authorised"),
    # 1000 of credit, 750 already held by pending payments: 300 more does not fit
    ({"payer_pos": pos(balance=0, held_out=750)}, E.CreditLimitExceeded, "credit_limit_exceeded"),
    ({"payer_pos": pos(balance=-800)}, E.CreditLimitExceeded, "credit_limit_exceeded"),
])
def test_prepare_out_refusals(kwargs, error, code):
    with pytest.raises(error) as exc:
        prepare_out(**kwargs)
    assert exc.value.code == code


def test_prepare_out_uses_the_whole_limit_holds_included():
    assert prepare_out(payer_pos=pos(balance=-200, held_out=500)).held_out == 800  # exactly -1000 spendable


def test_prepare_in_holds_on_the_peer_account_and_for_the_payee():
    peer, payee = F.check_prepare_in(transfer(), now_ms=NOW, view=AT_B, payee=PAYEE_ACCT,
                                     payee_pos=pos(ceiling=500, held_in=100), peer_pos=pos(limit=5000, held_out=10))
    assert peer == pos(limit=5000, held_out=210) and payee == pos(ceiling=500, held_in=300)


def prepare_in(t=None, *, view=AT_B, payee=PAYEE_ACCT, payee_pos=None, peer_pos=None, now=NOW):
    return F.check_prepare_in(t or transfer(), now_ms=now, view=view, payee=payee,
                              payee_pos=pos() if payee_pos is None else payee_pos,
                              peer_pos=pos(limit=5000) if peer_pos is None else peer_pos)


@pytest.mark.parametrize("kwargs,error,code", [
    ({"view": None}, E.UnknownAlliance, "unknown_alliance"),
    ({"view": AT_A}, E.UnknownAlliance, "unknown_alliance"),  # addressed to the other community
    ({"view": replace(AT_B, status="suspended")}, E.AllianceNotActive, "alliance_not_active"),
    ({"t": transfer(delivered=201)}, E.RateMismatch, "rate_mismatch"),
    ({"now": 1893456001_000}, E.Expired, "expired"),
    ({"payee": None}, E.UnknownAccount, "unknown_account"),
    ({"payee": replace(PAYEE_ACCT, status="closed")}, E.AccountNotActive, "account_not_active"),
    ({"payee": replace(PAYEE_ACCT, role="peer")}, E.NotAuthorised, "not_authorised"),
    # peer may owe 5000; owes 4700, 150 more pending: 200 does not fit, 150 would
    ({"peer_pos": pos(balance=-4700, limit=5000, held_out=150)}, E.PeerLimitReached, "peer_limit_reached"),
    ({"payee_pos": pos(balance=300, ceiling=600, held_in=150)}, E.CeilingExceeded, "ceiling_exceeded"),
])
def test_prepare_in_refusals(kwargs, error, code):
    with pytest.raises(error) as exc:
        prepare_in(**kwargs)
    assert exc.value.code == code


def test_prepare_in_up_to_the_peer_limit_and_ceiling_exactly():
    peer, payee = prepare_in(peer_pos=pos(balance=-4700, limit=5000, held_out=100),
                             payee_pos=pos(balance=300, ceiling=600, held_in=100))
    assert peer.held_out == 300 and payee.held_in == 300


def test_commit_and_abort_move_exactly_what_was_held():
    payer, peer = F.apply_commit_out(300, pos(balance=10, held_out=500), pos(balance=-5))
    assert payer == pos(balance=-290, held_out=200) and peer == pos(balance=295)
    peer, payee = F.apply_commit_in(200, pos(balance=0, held_out=200), pos(balance=7, held_in=250))
    assert peer == pos(balance=-200) and payee == pos(balance=207, held_in=50)
    assert F.apply_abort(300, pos(held_out=300)) == (pos(),)
    assert F.apply_abort(200, pos(held_out=250), pos(held_in=200)) == (pos(held_out=50), pos())
    for bad in (lambda: F.apply_commit_out(300, pos(held_out=299), pos()),
                lambda: F.apply_commit_in(200, pos(held_out=200), pos(held_in=199)),
                lambda: F.apply_abort(5, pos(held_out=4))):
        with pytest.raises(E.IntegrityViolation):
            bad()


def test_local_transfers_cannot_spend_what_is_held():
    F.check_local_transfer(200, pos(balance=0, held_out=800), pos())
    with pytest.raises(E.CreditLimitExceeded):
        F.check_local_transfer(201, pos(balance=0, held_out=800), pos())
    with pytest.raises(E.CeilingExceeded):
        F.check_local_transfer(1, pos(), pos(balance=400, ceiling=500, held_in=100))


def test_find_alliance():
    assert F.find_alliance({COMMUNITY_B: AT_A}, COMMUNITY_B) is AT_A
    with pytest.raises(E.UnknownAlliance):
        F.find_alliance({COMMUNITY_B: AT_A}, COMMUNITY_A)
    assert AT_B.peer_limit("CREDB") == 5000 and AT_A.peer_limit("CREDA") == 10_000
    with pytest.raises(E.UnknownCurrency):
        AT_A.peer_limit("CREDB")


# --- node messages ---------------------------------------------------------------------------

def test_node_message_from_the_named_node_verifies():
    msg = node_message()
    sig = F.sign_node_message(NODE_B_KEY, DOMAIN_B, msg)  # B votes, under B's domain
    F.verify_node_message(msg, sig, AT_A, now_ms=NOW + 1000)
    F.verify_node_message(msg, sig, AT_A)  # replay of a carried message: no window


@pytest.mark.parametrize("case,error", [
    ("wrong key", E.WrongNodeSignature),
    ("receiver's own domain", E.WrongNodeSignature),
    ("reflected back to its sender", E.WrongNodeSignature),
    ("tampered", E.WrongNodeSignature),
    ("garbage signature", E.WrongNodeSignature),
    ("other alliance", E.UnknownAlliance),
    ("no alliance", E.UnknownAlliance),
    ("stale", E.StaleNodeMessage),
    ("from the future", E.StaleNodeMessage),
])
def test_node_message_refusals(case, error):
    msg, view, now = node_message(), AT_A, NOW
    sig = F.sign_node_message(NODE_B_KEY, DOMAIN_B, msg)
    if case == "wrong key":
        sig = F.sign_node_message(keccak256(b"intruder"), DOMAIN_B, msg)
    elif case == "receiver's own domain":
        sig = F.sign_node_message(NODE_B_KEY, DOMAIN_A, msg)
    elif case == "reflected back to its sender":
        view = AT_B
    elif case == "tampered":
        msg = replace(msg, kind="refused")
    elif case == "garbage signature":
        sig = "0x" + "00" * 65
    elif case == "other alliance":
        view = F.AllianceView(replace(ALLIANCE, nonce=8), "A")
    elif case == "no alliance":
        view = None
    elif case == "stale":
        now = NOW + 300_001
    elif case == "from the future":
        now = NOW - 300_001
    with pytest.raises(error) as exc:
        F.verify_node_message(msg, sig, view, now_ms=now)
    assert exc.value.code == {E.WrongNodeSignature: "wrong_node_signature", E.UnknownAlliance: "unknown_alliance",
                              E.StaleNodeMessage: "stale_node_message"}[error]


def test_payment_id_is_the_payers_digest_under_the_origin_domain():
    t = transfer()
    pid = F.payment_id(DOMAIN_A, t)
    sig = sign_action(PAYER_KEY, DOMAIN_A, t)
    assert recover_signer(pid, sig) == PAYER
    assert F.payment_id(DOMAIN_B, t) != pid and F.payment_id(DOMAIN_A, replace(t, nonce=2)) != pid


def test_replay_window_refuses_the_same_signed_message_twice():
    window = F.ReplayWindow(window_ms=1000)
    msg = node_message()
    digest = DOMAIN_B.digest(msg.struct_hash())
    window.check_and_remember(digest, msg.at, NOW)
    with pytest.raises(E.StaleNodeMessage) as exc:
        window.check_and_remember(digest, msg.at, NOW + 10)
    assert exc.value.code == "stale_node_message"
    resent = replace(msg, at=msg.at + 1)  # a re-send is signed afresh: a new digest, accepted
    window.check_and_remember(DOMAIN_B.digest(resent.struct_hash()), resent.at, NOW + 10)
    for i in range(5000):  # pruning keeps it bounded without forgetting what is inside the window
        window.check_and_remember(keccak256(i.to_bytes(4, "big")), NOW - 5000, NOW + 20)
    assert len(window._seen) < 5000
    with pytest.raises(E.StaleNodeMessage):
        window.check_and_remember(digest, msg.at, NOW + 20)


def test_documented_remote_transfer_vector():
    """docs/federation.md's vector; eth-account derives the same digest and signature."""
    from ledger.core.typed_data import memo_hash
    key, domain = keccak256(b"ayni payer"), Domain(chain_id=31337, salt=keccak256(b"ayni test community"))
    allied = keccak256(b"ayni allied community")
    t = F.RemoteTransfer.create(payer=address_of_key(key), payee_community=allied,
                                payee="0xF2b142AC2987e5a86AfFC2b952628FcdC3d0AbfA", currency="HOUR", amount=90,
                                payee_currency="HOUR", delivered=90, nonce=1, valid_until=1893456000,
                                memo_hash=memo_hash("home visit", b"\x11" * 32))
    assert allied.hex() == "1bd3ade532acbb552b00c1b4b8564c6931da1b9f6a1f48e32a67752167f04666"
    assert t.struct_hash().hex() == "bd0c90757d04b1b5fad17d031bf1c1fcf6864b1350fe8ae8c0d72c9bd2f5da64"
    assert F.payment_id(domain, t).hex() == "04c5b1f0bbd82ce801751e40230fa5ffaab29107031f90036fa46a017bff6d20"
    sig = ("0x0a6399cd91f93ccd724e98a69af94c55c2b9ae58b95c9ed9246ba4ccecd405211eb5251d6652cbd233090cb8c0e8433c2418cb4e"
           "052b70d285d2b725324d1cb41b")
    assert sign_action(key, domain, t) == sig
    assert "0x" + Account.sign_typed_data(key, full_message=F.full_message(domain, t)).signature.hex().removeprefix(
        "0x") == sig
    assert F.peer_address(allied) == "0x92c63c5B54d03894E66b62Fa6B082c981b373a70"
    doc = (ROOT / "docs" / "federation.md").read_text(encoding="utf-8")
    for value in (t.struct_hash().hex(), F.payment_id(domain, t).hex(), sig, F.peer_address(allied)):
        assert value in doc


def test_alliance_terms_checked_before_recording():
    view = F.check_alliance_terms(ALLIANCE, own_community=COMMUNITY_B, currencies={"HOUR", "CREDB"}, now_ms=NOW)
    assert view == AT_B and view.peer_account == F.peer_address(COMMUNITY_A)
    assert F.check_alliance_terms(ALLIANCE, own_community=COMMUNITY_A, currencies={"HOUR", "CREDA", "X1"},
                                  now_ms=NOW) == AT_A
    with pytest.raises(E.InvalidInput, match="not a party"):
        F.check_alliance_terms(ALLIANCE, own_community=keccak256(b"C"), currencies={"HOUR"}, now_ms=NOW)
    with pytest.raises(E.UnknownCurrency):
        F.check_alliance_terms(ALLIANCE, own_community=COMMUNITY_B, currencies={"HOUR", "CREDA"}, now_ms=NOW)
    with pytest.raises(E.Expired):
        F.check_alliance_terms(ALLIANCE, own_community=COMMUNITY_B, currencies={"HOUR", "CREDB"},
                               now_ms=1893456001_000)


def test_alliance_signers_each_under_their_own_domain():
    key_b = keccak256(b"treasurer B")
    sig_a, sig_b = sign_action(TREASURER_A_KEY, DOMAIN_A, ALLIANCE), sign_action(key_b, DOMAIN_B, ALLIANCE)
    assert F.alliance_signers(ALLIANCE, sig_a, sig_b) == (address_of_key(TREASURER_A_KEY), address_of_key(key_b))
    # signatures swapped, or B's made under A's domain: they recover to someone else
    assert F.alliance_signers(ALLIANCE, sig_b, sig_a) != (address_of_key(key_b), address_of_key(TREASURER_A_KEY))
    wrong = sign_action(key_b, DOMAIN_A, ALLIANCE)
    assert F.alliance_signers(ALLIANCE, sig_a, wrong)[1] != address_of_key(key_b)
