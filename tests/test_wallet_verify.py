"""Defect 3: a receipt is proof only against the contract and chain the member pinned.

A forged receipt (amount x100, hashes recomputed) anchored by the attacker's own, freshly
deployed Anchor contract on the embedded chain holds against the contract it names; against
the community's pinned contract it is refused. With the community's signing domain pinned,
a receipt whose entry was forged by whoever holds the anchoring key (the server) is refused
too: its signature does not recover to the payer."""
import copy

import pytest

from ledger import signing
from ledger.anchoring import Anchoring
from ledger.chain import AnchorChain
from ledger.core.codec import hex0x
from ledger.core.entries import canonical_bytes
from ledger.core.hashing import keccak256
from ledger.core.merkle import entry_leaf
from ledger.core.receipts import verify_receipt
from ledger.core.trust_root import TrustRoot
from ledger.verify.anchor_reader import AnchorReader
from wallet_cli.verify import check

from .conftest import Community


@pytest.fixture(scope="module")
def anchored(tmp_path_factory):
    c = Community(f"sqlite:///{tmp_path_factory.mktemp('verify')}/v.db")
    for n in ("ana", "bea"):
        c.member(n)
    seq = c.ledger.submit(c.pay("ana", "bea", 90, memo="lunch")).seq
    chain = AnchorChain.embedded()
    chain.deploy()
    anchoring = Anchoring(c.ledger, chain)
    anchoring.run()
    yield c, chain, anchoring.receipt(seq)
    c.dispose()


def forge(receipt: dict, anchorer: AnchorChain, *, redigest=None) -> dict:
    """The receipt with its amount x100, every hash recomputed, anchored as a one-leaf batch
    1..seq by `anchorer` (its own contract)."""
    doc = copy.deepcopy(receipt)
    e = doc["entry"]
    e["body"]["amount"] *= 100
    if redigest is not None:
        e["body"]["digest"] = redigest(e["body"])
    entry_hash = keccak256(canonical_bytes(e["seq"], e["kind"], e["at"], e["body"]))
    leaf = entry_leaf(e["seq"], entry_hash)
    doc.update(entryHash=hex0x(entry_hash), values=[e["seq"], hex0x(entry_hash)], leaf=hex0x(leaf), proof=[],
               root=hex0x(leaf), batch={"firstSeq": 1, "lastSeq": e["seq"]}, contract=anchorer.contract_address,
               chainId=anchorer.chain_id)
    tx = anchorer.send_anchor(leaf, 1, e["seq"])
    assert anchorer.wait(tx).status == "confirmed"
    doc["txHash"] = tx
    return doc


def reader_at(chain: AnchorChain, address: str) -> AnchorReader:
    reader = AnchorReader(chain.w3)
    reader.use_contract(address)
    return reader


def test_the_genuine_receipt_holds_against_the_pinned_contract(anchored):
    c, chain, receipt = anchored
    pins = TrustRoot(contract=chain.contract_address.lower(), anchor_chain_id=chain.chain_id)
    assert check(receipt, reader_at(chain, chain.contract_address), pins) == []
    domain = c.ledger.genesis.domain
    pinned_domain = TrustRoot(contract=chain.contract_address, anchor_chain_id=chain.chain_id,
                              chain_id=domain.chain_id, community_salt=hex0x(domain.salt))
    assert check(receipt, reader_at(chain, chain.contract_address), pinned_domain) == []


def test_a_receipt_anchored_in_the_attackers_contract_is_refused(anchored):
    c, chain, receipt = anchored
    attacker = chain.with_key(signing.new_key())
    attacker.deploy()  # a fresh Anchor, the attacker its anchorer
    forged = forge(receipt, attacker)
    # what verify did before: trust the contract the receipt names -- and the forgery holds there
    assert verify_receipt(forged, reader_at(chain, forged["contract"])) == []
    pins = TrustRoot(contract=chain.contract_address, anchor_chain_id=chain.chain_id)
    problems = check(forged, reader_at(chain, chain.contract_address), pins)
    assert problems and "not the pinned" in problems[0] and attacker.contract_address in problems[0]
    # another chain id than the pinned one is refused the same way
    elsewhere = TrustRoot(contract=forged["contract"], anchor_chain_id=chain.chain_id + 1)
    assert "not the pinned chain" in check(forged, reader_at(chain, forged["contract"]), elsewhere)[0]


def test_with_the_domain_pinned_a_server_forged_entry_is_refused(anchored):
    """Whoever holds the anchoring key can anchor a forged entry in the community's contract
    (simulated here by a contract of the same anchorer); only the payer's signature tells."""
    c, chain, receipt = anchored
    domain = c.ledger.genesis.domain
    from ledger.core.state import action_from_body
    server = chain.with_key(signing.new_key())
    server.deploy()

    def redigest(body):
        action, _, _ = action_from_body("transfer.posted", body)
        return hex0x(domain.digest(action.struct_hash()))
    forged = forge(receipt, server, redigest=redigest)
    reader = reader_at(chain, server.contract_address)
    contract_only = TrustRoot(contract=server.contract_address, anchor_chain_id=chain.chain_id)
    assert check(forged, reader, contract_only) == []  # the chain alone cannot tell
    with_domain = TrustRoot(contract=server.contract_address, anchor_chain_id=chain.chain_id,
                            chain_id=domain.chain_id, community_salt=hex0x(domain.salt))
    problems = check(forged, reader, with_domain)
    assert problems and "signature recovers to" in problems[0] and c.addr("ana") in problems[0]
    # an edited entry whose digest was not recomputed is caught at the digest
    other = chain.with_key(signing.new_key())
    other.deploy()
    edited = forge(receipt, other)
    pins = TrustRoot(contract=other.contract_address, anchor_chain_id=chain.chain_id,
                     chain_id=domain.chain_id, community_salt=hex0x(domain.salt))
    assert "digest" in check(edited, reader_at(chain, other.contract_address), pins)[0]
