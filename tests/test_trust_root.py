"""ledger/core/trust_root.py and ledger/core/purposes.py: the pins every check holds the server
to, and the one rule for which purpose a read declares (both pure)."""
from types import SimpleNamespace

import pytest

from ledger.core.findings import Finding
from ledger.core.purposes import MUST_CHOOSE, purpose_for, purposes_to_offer
from ledger.core.trust_root import TrustRoot
from ledger.core.typed_data import Domain

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SALT = "0x" + "ab" * 32


def test_anchor_target_must_be_the_pinned_contract_and_chain():
    pins = TrustRoot(contract=CONTRACT, chain_id=31337)
    assert pins.check_anchor_target(CONTRACT.lower(), 31337, what="the receipt") == []
    [m] = pins.check_anchor_target("0x" + "12" * 20, 31337, what="the receipt")
    assert "not the pinned" in m.detail and m.expected == CONTRACT
    [m] = pins.check_anchor_target(CONTRACT, 1, what="the receipt")
    assert "not the pinned chain 31337" in m.detail
    # the anchoring chain may differ from the signing domain's chain id
    assert TrustRoot(contract=CONTRACT, chain_id=31337, anchor_chain_id=100).check_anchor_target(
        CONTRACT, 100, what="x") == []
    assert TrustRoot().check_anchor_target(None, None, what="x") == []  # nothing pinned: nothing claimed


def test_history_checks_genesis_domain_and_own_role():
    domain = Domain(chain_id=31337, salt=bytes.fromhex(SALT[2:]))
    me = "0x" + "77" * 20
    accounts = {me: SimpleNamespace(role="auditor", status="active")}
    pins = TrustRoot(genesis_hash="0x01", community_salt=SALT, chain_id=31337, own_key=me, own_role="auditor")
    assert pins.check_history("0x01", domain, accounts) == []
    assert [m.detail for m in pins.check_history("0x02", domain, accounts)] == [
        "the genesis entry differs from the one pinned at an earlier reconciliation"]
    other = Domain(chain_id=1, salt=b"\x01" * 32)
    assert {m.detail for m in pins.check_history("0x01", other, accounts)} == {
        "another community (salt)", "another chain id in the signing domain"}
    as_treasurer = TrustRoot(own_key=me)
    assert "no treasurer rights" in as_treasurer.check_history(None, domain, accounts)[0].detail
    assert pins.domain() == domain and TrustRoot(chain_id=1).domain() is None


def test_trust_root_checks_report_the_one_finding_type():
    # One fault type for every verifier: reports count and print trust-root faults like any other.
    pins = TrustRoot(contract=CONTRACT, genesis_hash="0x01")
    faults = pins.check_anchor_target("0x" + "12" * 20, 31337, what="the receipt") + pins.check_history("0x02", None)
    assert [type(f) for f in faults] == [Finding, Finding]
    assert {f.code for f in faults} == {"trust_root"} and [f.seq for f in faults] == [None, 1]
    assert faults[1].as_dict()["check"] == "trust_root" and "genesis entry differs" in str(faults[1])


def test_pins_file_round_trip_and_configuration_overrides_it():
    learnt = TrustRoot(genesis_hash="0x01", community_salt=SALT, chain_id=31337, contract=CONTRACT,
                       anchor_chain_id=31337)
    assert TrustRoot.from_pins_file(learnt.pins_file()) == learnt
    merged = learnt.overridden_by(TrustRoot(contract="0x" + "12" * 20, own_key="0x" + "77" * 20, own_role="auditor"))
    assert merged.contract == "0x" + "12" * 20 and merged.genesis_hash == "0x01" and merged.own_role == "auditor"
    assert not TrustRoot().pins_anything() and TrustRoot(own_key="0x1").pins_anything()


@pytest.mark.parametrize("reader,subject,given,role,expected", [
    ("0xA", "0xa", None, None, None),                     # your own data: no purpose
    ("0xA", "0xB", None, "treasurer", MUST_CHOOSE),       # another member's: never filled in
    ("0xA", "0xB", "account_administration", None, "account_administration"),
    ("0xA", None, None, "treasurer", "reconciliation"),   # the whole ledger: the role's purpose
    ("0xA", None, None, "auditor", "audit"),
])
def test_purpose_selection(reader, subject, given, role, expected):
    chosen = purpose_for(reader=reader, subject=subject, given=given, reader_role=role)
    assert chosen is expected if expected is MUST_CHOOSE else chosen == expected


def test_purposes_offered_for_another_members_data():
    policy = {"purposes": [
        {"id": "member_access", "essential": True, "roles": ["self"], "categories": ["entries"]},
        {"id": "reconciliation", "essential": True, "roles": ["treasurer"], "categories": ["entries"]},
        {"id": "care_coordination", "essential": False, "roles": ["grantee"], "categories": ["memos"]},
        {"id": "public_verification", "essential": False, "roles": ["anyone"], "categories": []},
    ]}
    assert purposes_to_offer(policy) == ["reconciliation", "care_coordination"]


def test_malformed_pins_in_the_configuration_are_refused(monkeypatch, tmp_path):
    from wallet_cli.config import WalletError, load_config
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for env, value in (("AYNI_ANCHOR_CONTRACT", "0x1234"), ("AYNI_COMMUNITY_SALT", "salty"),
                       ("AYNI_ANCHOR_CHAIN_ID", "one")):
        monkeypatch.setenv(env, value)
        with pytest.raises(WalletError, match=f"from {env} is malformed"):
            load_config()
        monkeypatch.delenv(env)
    monkeypatch.setenv("AYNI_ANCHOR_CONTRACT", CONTRACT)
    assert load_config().anchor_contract == CONTRACT
