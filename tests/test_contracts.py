"""contracts/: committed artifacts vs a fresh compile, and Anchor / MerkleProof on py-evm.

The chain is eth-tester's in-process py-evm (no node, no ports). The fresh compile runs solc-js
from node_modules (`npm ci`) through tests/js/compile.js, independently of Hardhat.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_tester.exceptions import TransactionFailed
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.providers.eth_tester import EthereumTesterProvider

from ledger.core.hashing import keccak256
from ledger.core.merkle import build_entry_tree, entry_leaf, verify_proof

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "contracts" / "build"
EXPORTED = ["Anchor", "MerkleProofHarness"]
GAS_TARGET = 31_500
UINT64_MAX = 2**64 - 1


def artifact(name: str) -> dict:
    return json.loads((BUILD / f"{name}.json").read_text())


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


NOT_CONTIGUOUS = selector("NotContiguous(uint64,uint64,uint64)")
ZERO_ROOT = selector("ZeroRoot()")
NO_CHECKPOINT = selector("NoCheckpoint()")
UNAUTHORIZED = selector("AccessControlUnauthorizedAccount(address,bytes32)")


# --------------------------------------------------------------------------- fresh compile


@pytest.fixture(scope="module")
def fresh_compile() -> dict:
    node = shutil.which("node")
    assert node, "node is required (Node 20)"
    assert (ROOT / "node_modules" / "solc").is_dir(), "run `npm ci` first"
    proc = subprocess.run(
        [node, "tests/js/compile.js"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", EXPORTED)
def test_committed_artifacts_equal_fresh_compile(fresh_compile, name):
    committed = artifact(name)
    fresh = fresh_compile["contracts"][name]
    assert committed["contractName"] == name
    assert committed["sourceName"] == fresh["sourceName"]
    assert fresh_compile["solcVersion"].startswith(committed["compiler"]["longVersion"] + ".")
    assert committed["settings"]["evmVersion"] == "cancun"
    assert committed["abi"] == fresh["abi"]
    # byte-for-byte, including the metadata hash (which covers every source file and setting)
    assert committed["bytecode"] == fresh["bytecode"]
    assert committed["deployedBytecode"] == fresh["deployedBytecode"]


def test_sources_pin_the_compiler():
    for sol in ["contracts/Anchor.sol", "contracts/harness/MerkleProofHarness.sol"]:
        text = (ROOT / sol).read_text()
        version = artifact(Path(sol).stem)["compiler"]["version"]
        assert f"pragma solidity {version};" in text
    package = json.loads((ROOT / "package.json").read_text())
    assert package["devDependencies"]["solc"] == artifact("Anchor")["compiler"]["version"]


# --------------------------------------------------------------------------- chain helpers


def revert_data(exc: BaseException) -> bytes | None:
    """Revert data from eth-tester (TransactionFailed, raw bytes in the exception chain) or
    from a JSON-RPC node (web3 ContractLogicError.data, hex)."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for arg in e.args:
            if isinstance(arg, (bytes, bytearray)):
                return bytes(arg)
        e = e.__cause__ or e.__context__
    return None


def expect_revert(fn, error_selector: bytes | None = None) -> bytes:
    with pytest.raises((TransactionFailed, ContractLogicError)) as info:
        fn()
    data = revert_data(info.value)
    if error_selector is not None:
        assert data is not None and data[:4] == error_selector, (data, info.value)
    return data


class Chain:
    def __init__(self):
        self.w3 = Web3(EthereumTesterProvider())
        self.admin, self.anchorer, self.backup, self.stranger = self.w3.eth.accounts[:4]

    def deploy(self, name: str, *args, sender=None):
        art = artifact(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        tx = factory.constructor(*args).transact({"from": sender or self.admin})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt.status == 1
        return self.w3.eth.contract(address=receipt.contractAddress, abi=art["abi"]), receipt

    def send(self, fn, sender):
        receipt = self.w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))
        assert receipt.status == 1
        return receipt


def accumulate(acc: bytes, root: bytes, first: int, last: int) -> bytes:
    return keccak256(acc + root + first.to_bytes(8, "big") + last.to_bytes(8, "big"))[:24]


@pytest.fixture()
def chain():
    return Chain()


@pytest.fixture()
def anchor(chain):
    contract, receipt = chain.deploy("Anchor", chain.admin, chain.anchorer)
    contract.deploy_gas = receipt.gasUsed
    return contract


def rand_root(rng: random.Random) -> bytes:
    return bytes(rng.randrange(1, 256) for _ in range(32))  # no zero bytes: the most expensive calldata


# --------------------------------------------------------------------------- Anchor


def test_genesis_is_bound_to_chain_and_address(chain, anchor):
    genesis = keccak256(
        abi_encode(["string", "uint256", "address"], ["Ayni.Anchor.v1", chain.w3.eth.chain_id, anchor.address])
    )[:24]
    assert anchor.functions.GENESIS().call() == genesis
    assert anchor.functions.head().call() == [genesis, 0]
    assert anchor.functions.lastAnchoredSeq().call() == 0
    assert anchor.functions.ANCHORER().call() == chain.anchorer
    assert anchor.functions.isAnchorer(chain.anchorer).call() is True
    assert anchor.functions.isAnchorer(chain.admin).call() is False


def test_access_control(chain, anchor):
    rng = random.Random(1)
    f = anchor.functions
    for who in (chain.stranger, chain.admin, chain.backup):
        expect_revert(lambda: f.anchor(rand_root(rng), 1, 1).transact({"from": who}), UNAUTHORIZED)
    chain.send(f.anchor(rand_root(rng), 1, 1), chain.anchorer)
    role = f.ANCHOR_ROLE().call()
    # only the admin manages anchoring keys
    expect_revert(lambda: f.grantRole(role, chain.backup).transact({"from": chain.anchorer}), UNAUTHORIZED)
    chain.send(f.grantRole(role, chain.backup), chain.admin)
    chain.send(f.anchor(rand_root(rng), 2, 3), chain.backup)
    chain.send(f.revokeRole(role, chain.backup), chain.admin)
    expect_revert(lambda: f.anchor(rand_root(rng), 4, 4).transact({"from": chain.backup}), UNAUTHORIZED)
    assert f.lastAnchoredSeq().call() == 3
    # retire: admin only, then nobody can anchor
    expect_revert(lambda: f.retire().transact({"from": chain.anchorer}), UNAUTHORIZED)
    chain.send(f.retire(), chain.admin)
    assert f.retired().call() is True
    expect_revert(lambda: f.anchor(rand_root(rng), 4, 4).transact({"from": chain.anchorer}), NOT_CONTIGUOUS)


def test_contiguity_and_order(chain, anchor):
    rng = random.Random(2)
    f = anchor.functions

    def bad(first, last, root=None, sel=NOT_CONTIGUOUS):
        r = rand_root(rng) if root is None else root
        return expect_revert(lambda: f.anchor(r, first, last).transact({"from": chain.anchorer}), sel)

    bad(0, 0)
    bad(2, 2)  # the first batch starts at 1
    bad(1, 0)  # empty
    bad(1, 1, root=b"\x00" * 32, sel=ZERO_ROOT)
    chain.send(f.anchor(rand_root(rng), 1, 10), chain.anchorer)
    data = bad(12, 20)  # gap
    assert data[4:] == abi_encode(["uint64", "uint64", "uint64"], [11, 12, 20])
    bad(10, 20)  # overlap
    bad(1, 10)  # replay
    bad(11, 10)  # empty
    chain.send(f.anchor(rand_root(rng), 11, 11), chain.anchorer)
    chain.send(f.anchor(rand_root(rng), 12, UINT64_MAX - 1), chain.anchorer)
    assert f.lastAnchoredSeq().call() == UINT64_MAX - 1


def test_event_accumulator_and_on_chain_check(chain, anchor):
    rng = random.Random(3)
    f = anchor.functions
    acc = f.GENESIS().call()
    accs, batches, last = [acc], [], 0
    for size in (1, 5, 1000, 2, 100_000):
        root = rand_root(rng)
        receipt = chain.send(f.anchor(root, last + 1, last + size), chain.anchorer)
        (event,) = anchor.events.Anchored().process_receipt(receipt)
        acc = accumulate(acc, root, last + 1, last + size)
        assert (event.args.root, event.args.firstSeq, event.args.lastSeq, event.args.accumulator) == (
            root, last + 1, last + size, acc,
        )
        assert f.accumulate(accs[-1], root, last + 1, last + size).call() == acc
        batches.append((root, last + 1, last + size))
        accs.append(acc)
        last += size
        assert f.head().call() == [acc, last]
    assert f.verifyChain(accs[0], 0, batches).call() is True
    assert f.verifyChain(accs[0], 0, batches[:-1]).call() is False
    for i, (root, first, lst) in enumerate(batches):
        later = batches[i + 1 :]
        assert f.isAnchored(root, first, lst, accs[i], later).call() is True
        assert f.isAnchored(rand_root(rng), first, lst, accs[i], later).call() is False
        assert f.isAnchored(root, first, lst + 1, accs[i], later).call() is False
        assert f.isAnchored(root, first, lst, accs[i + 1], later).call() is False
        if later:
            assert f.isAnchored(root, first, lst, accs[i], later[:-1]).call() is False
    # a checkpoint (permissionless) lets later proofs stop there
    chain.send(f.checkpoint(), chain.stranger)
    chain.send(f.anchor(rand_root(rng), last + 1, last + 3), chain.anchorer)
    root, first, lst = batches[-1]
    assert f.isAnchored(root, first, lst, accs[-2], []).call() is True
    assert f.checkpoints(accs[-1]).call() == last


def test_checkpoint_needs_a_batch(chain, anchor):
    expect_revert(lambda: anchor.functions.checkpoint().transact({"from": chain.stranger}), NO_CHECKPOINT)


def test_gas_per_anchor_call_is_constant_and_within_target(chain, anchor, capsys):
    rng = random.Random(4)
    f = anchor.functions
    rows, last = [], 0
    for size in (1, 10, 100, 1_000, 10_000, 100_000, 1, 1, 1):
        receipt = chain.send(f.anchor(rand_root(rng), last + 1, last + size), chain.anchorer)
        rows.append((last + 1, size, receipt.gasUsed))
        last += size
    chain.send(f.grantRole(f.ANCHOR_ROLE().call(), chain.backup), chain.admin)
    role_gas = chain.send(f.anchor(rand_root(rng), last + 1, last + 100), chain.backup).gasUsed
    gas = [g for _, _, g in rows]
    with capsys.disabled():
        print(f"\n  Anchor deploy gas: {anchor.deploy_gas}")
        for first, size, g in rows:
            print(f"  anchor firstSeq={first:<7} batch={size:<7} gasUsed={g}")
        print(f"  anchor by an ANCHOR_ROLE key: gasUsed={role_gas}")
    # first call == steady state (the head slot is non-zero from the constructor on)
    assert gas[0] <= GAS_TARGET and max(gas) <= GAS_TARGET, gas
    # independent of batch size: only calldata (16 gas per non-zero byte of the seqs) varies
    assert max(gas) - min(gas) <= 100, gas
    assert 21_000 + 8_000 < min(gas)  # sanity: it did the SSTORE + log, not an early exit
    assert role_gas > max(gas) + 2_000  # the cold SLOAD of the role, as documented


# --------------------------------------------------------------------------- MerkleProof on chain


def test_merkle_proofs_from_ledger_core_verify_with_openzeppelin_on_chain(chain):
    harness, _ = chain.deploy("MerkleProofHarness")
    rng = random.Random(5)
    for n in (1, 2, 3, 8, 13, 100):
        entries = [(seq, rng.randbytes(32)) for seq in range(1000, 1000 + n)]
        tree = build_entry_tree(entries)
        for i in sorted({0, n // 2, n - 1}):
            seq, entry_hash = entries[i]
            leaf = entry_leaf(seq, entry_hash)
            proof = tree.proof(i)
            assert verify_proof(tree.root, leaf, proof)
            assert harness.functions.entryLeaf(seq, entry_hash).call() == leaf
            assert harness.functions.verify(proof, tree.root, leaf).call() is True
            assert harness.functions.processProof(proof, leaf).call() == tree.root
            assert harness.functions.verifyEntry(proof, tree.root, seq, entry_hash).call() is True
            assert harness.functions.verifyEntry(proof, tree.root, seq + 1, entry_hash).call() is False
            if proof:
                bad = [bytes([proof[0][0] ^ 1]) + proof[0][1:]] + proof[1:]
                assert harness.functions.verify(bad, tree.root, leaf).call() is False


# --------------------------------------------------------------------------- cost-report contracts


@pytest.mark.parametrize("name", ["MutualCredit", "CommunityToken"])
def test_cost_contract_artifacts_equal_fresh_compile(fresh_compile, name):
    """contracts/build/{MutualCredit,CommunityToken}.json (used by `ayni cost-report`) are what
    the pinned solc-js compiles from the sources today."""
    committed, fresh = artifact(name), fresh_compile["contracts"][name]
    assert committed["sourceName"] == fresh["sourceName"] == f"contracts/{name}.sol"
    assert committed["abi"] == fresh["abi"]
    assert committed["bytecode"] == fresh["bytecode"]
    assert committed["deployedBytecode"] == fresh["deployedBytecode"]
    assert f"pragma solidity {committed['compiler']['version']};" in (ROOT / fresh["sourceName"]).read_text()
