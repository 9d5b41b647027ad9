"""ledger/core/merkle.py against the npm library @openzeppelin/merkle-tree itself.

The reference side (tests/js/merkle.js) runs the library from node_modules (installed by
`npm ci`); the on-chain side (MerkleProof.verify) is in tests/test_contracts.py.
"""
from __future__ import annotations

import json
import random
import shutil
import sys
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.hashing import keccak256
from ledger.core.merkle import (
    ENTRY_LEAF_TYPES,
    MerkleTree,
    StandardMerkleTree,
    build_entry_tree,
    build_tree,
    entry_leaf,
    entry_leaves,
    is_valid_tree,
    leaf_hash,
    make_tree,
    node_hash,
    process_proof,
    verify_proof,
)

ROOT = Path(__file__).resolve().parent.parent

# test/dumps/standard-v1.sorted.1_0_6.json from github.com/OpenZeppelin/merkle-tree (published dump).
PUBLISHED_DUMP = (
    '{"format":"standard-v1","leafEncoding":["string"],"tree":['
    '"0x6deb52b5da8fd108f79fab00341f38d2587896634c646ee52e49f845680a70c8",'
    '"0x52426e0f1f65ff7e209a13b8c29cffe82e3acaf3dad0a9b9088f3b9a61a929c3",'
    '"0xfd3cf45654e88d1cc5d663578c82c76f4b5e3826bacaa1216441443504538f51",'
    '"0x8076923e76cf01a7c048400a2304c9a9c23bbbdac3a98ea3946340fdafbba34f",'
    '"0x965b92c6cf08303cc4feb7f3e0819c436c2cec17c6f0688a6af139c9a368707c",'
    '"0xeba909cf4bb90c6922771d7f126ad0fd11dfde93f3937a196274e1ac20fd2f5b",'
    '"0xc62a8cfa41edc0ef6f6ae27a2985b7d39c7fea770787d7e104696c6e81f64848",'
    '"0x9cf5a63718145ba968a01c1d557020181c5b252f665cf7386d370eddb176517b",'
    '"0x9c15a6a0eaeed500fd9eed4cbeab71f797cefcc67bfd46683e4d2e6ff7f06d1c",'
    '"0x9a4f64e953595df82d1b4f570d34c4f4f0cfaf729a61e9d60e83e579e1aa283e",'
    '"0x19ba6c6333e0e9a15bf67523e0676e2f23eb8e574092552d5e888c64a4bb3681"],'
    '"values":[{"value":["a"],"treeIndex":8},{"value":["b"],"treeIndex":10},'
    '{"value":["c"],"treeIndex":7},{"value":["d"],"treeIndex":5},'
    '{"value":["e"],"treeIndex":9},{"value":["f"],"treeIndex":6}]}'
)
PUBLISHED_ROOT = bytes.fromhex("6deb52b5da8fd108f79fab00341f38d2587896634c646ee52e49f845680a70c8")


def run_js_library(jobs: list[dict]) -> list[dict]:
    """Build every job's tree with @openzeppelin/merkle-tree (one node process for all)."""
    node = shutil.which("node")
    assert node, "node is required (Node 20)"
    assert (ROOT / "node_modules" / "@openzeppelin" / "merkle-tree").is_dir(), "run `npm ci` first"
    proc = subprocess.run(
        [node, "tests/js/merkle.js"],
        cwd=ROOT,
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def h(x: bytes) -> str:
    return "0x" + x.hex()


def rand_value(rng: random.Random, typ: str):
    if typ == "uint64":
        return str(rng.choice([0, 1, rng.randrange(2**64)]))
    if typ == "uint256":
        return str(rng.randrange(2**256))
    if typ == "int256":
        return str(rng.randrange(-(2**255), 2**255))
    if typ == "bytes32":
        return h(rng.randbytes(32))
    if typ == "bytes":
        return h(rng.randbytes(rng.randrange(0, 70)))
    if typ == "address":
        return h(rng.randbytes(20))
    if typ == "bool":
        return rng.random() < 0.5
    if typ == "string":
        return "".join(rng.choice("abcxyzé€ ") for _ in range(rng.randrange(0, 40)))
    if typ == "uint256[]":
        return [str(rng.randrange(2**256)) for _ in range(rng.randrange(0, 4))]
    raise AssertionError(typ)


ENCODINGS = [
    list(ENTRY_LEAF_TYPES),
    ["address", "uint256"],
    ["string"],
    ["bytes", "bool", "int256"],
    ["uint256[]", "bytes32"],
]
SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257]


@pytest.fixture(scope="module")
def js_cases():
    rng = random.Random(20261128)
    jobs = []
    for enc in ENCODINGS:
        for n in SIZES:
            values = [[rand_value(rng, t) for t in enc] for _ in range(n)]
            if n >= 4:  # duplicates exercise the stable ordering of equal leaves
                values[n // 2] = list(values[1])
            jobs.append({"types": enc, "values": values, "sortLeaves": True})
    for n in (1, 2, 7, 33):  # the library's unsorted option
        values = [[rand_value(rng, t) for t in ENTRY_LEAF_TYPES] for _ in range(n)]
        jobs.append({"types": list(ENTRY_LEAF_TYPES), "values": values, "sortLeaves": False})
    leaf_jobs = []
    for n in SIZES + [1000]:
        leaves = [h(rng.randbytes(32)) for _ in range(n)]
        if n >= 4:
            leaves[-1] = leaves[0]
        leaf_jobs.append({"leaves": leaves, "sortLeaves": True})
        leaf_jobs.append({"leaves": leaves, "sortLeaves": False})
    results = run_js_library(jobs + leaf_jobs)
    return list(zip(jobs, results[: len(jobs)])), list(zip(leaf_jobs, results[len(jobs) :]))


def test_standard_tree_matches_npm_library(js_cases):
    standard, _ = js_cases
    assert len(standard) == len(ENCODINGS) * len(SIZES) + 4
    for job, ref in standard:
        tree = StandardMerkleTree.of(job["values"], job["types"], sort_leaves=job["sortLeaves"])
        assert h(tree.root) == ref["root"], job["types"]
        assert tree.dump() == ref["dump"]  # same tree array, value order and tree indices
        for i, ref_proof in enumerate(ref["proofs"]):
            proof = tree.get_proof(i)
            assert [h(p) for p in proof] == ref_proof
            assert tree.verify(i, proof)
            assert StandardMerkleTree.verify_value(tree.root, job["types"], job["values"][i], proof)
        # and the library's dump loads back into the same tree
        loaded = StandardMerkleTree.load(ref["dump"])
        assert loaded.root == tree.root and loaded.values == tree.values


def test_build_tree_matches_npm_simple_tree(js_cases):
    """build_tree over raw leaf hashes == SimpleMerkleTree (same layout, ordering, proofs)."""
    _, simple = js_cases
    for job, ref in simple:
        leaves = [bytes.fromhex(x[2:]) for x in job["leaves"]]
        tree = build_tree(leaves, sort_leaves=job["sortLeaves"])
        assert h(tree.root) == ref["root"]
        assert [h(x) for x in tree.tree] == ref["dump"]["tree"]
        for i, ref_proof in enumerate(ref["proofs"]):
            assert [h(p) for p in tree.proof(i)] == ref_proof
            assert ref["dump"]["values"][i]["treeIndex"] == tree.tree_index(i)


def test_ledger_entry_leaves_match_npm_library(js_cases):
    standard, _ = js_cases
    checked = 0
    for job, ref in standard:
        if job["types"] != list(ENTRY_LEAF_TYPES) or not job["sortLeaves"]:
            continue
        entries = [(int(s), bytes.fromhex(e[2:])) for s, e in job["values"]]
        leaves = entry_leaves(entries)
        assert leaves == [entry_leaf(s, e) for s, e in entries]
        assert leaves == [leaf_hash(ENTRY_LEAF_TYPES, [s, e]) for s, e in entries]
        tree = build_entry_tree(entries)
        assert h(tree.root) == ref["root"]
        for i, ref_proof in enumerate(ref["proofs"]):
            assert [h(p) for p in tree.proof(i)] == ref_proof
            assert verify_proof(tree.root, leaves[i], tree.proof(i))
        checked += 1
    assert checked == len(SIZES)


def test_published_dump_reproduced():
    published = json.loads(PUBLISHED_DUMP)
    tree = StandardMerkleTree.of([[c] for c in "abcdef"], ["string"])
    assert tree.root == PUBLISHED_ROOT
    assert tree.dump() == published
    loaded = StandardMerkleTree.load(published)
    assert loaded.root == PUBLISHED_ROOT
    for i, c in enumerate("abcdef"):
        proof = loaded.get_proof(i)
        assert proof == loaded.get_proof([c]) == tree.get_proof(i)
        assert StandardMerkleTree.verify_value(PUBLISHED_ROOT, ["string"], [c], proof)
        assert not StandardMerkleTree.verify_value(PUBLISHED_ROOT, ["string"], [c + "x"], proof)


def test_published_dump_reproduced_by_npm_library():
    (ref,) = run_js_library([{"types": ["string"], "values": [[c] for c in "abcdef"]}])
    assert ref["dump"] == json.loads(PUBLISHED_DUMP)


def test_load_rejects_tampered_dumps():
    good = json.loads(PUBLISHED_DUMP)
    bad_format = dict(good, format="simple-v1")
    with pytest.raises(ValueError, match="Unknown format"):
        StandardMerkleTree.load(bad_format)
    bad_node = json.loads(PUBLISHED_DUMP)
    bad_node["tree"][3] = "0x" + "00" * 32
    with pytest.raises(ValueError):
        StandardMerkleTree.load(bad_node)
    bad_value = json.loads(PUBLISHED_DUMP)
    bad_value["values"][0]["value"] = ["z"]
    with pytest.raises(ValueError, match="expected value"):
        StandardMerkleTree.load(bad_value)
    no_enc = dict(good)
    del no_enc["leafEncoding"]
    with pytest.raises(ValueError, match="leaf encoding"):
        StandardMerkleTree.load(no_enc)


def test_leaf_and_node_hash_definitions():
    # leaf = keccak(keccak(abi.encode(uint64 seq, bytes32 entryHash))): 32-byte words, big-endian
    e = bytes(range(32))
    enc = (7).to_bytes(32, "big") + e
    assert entry_leaf(7, e) == keccak256(keccak256(enc))
    a, b = keccak256(b"a"), keccak256(b"b")
    assert node_hash(a, b) == node_hash(b, a) == keccak256(min(a, b) + max(a, b))
    with pytest.raises(ValueError):
        entry_leaf(-1, e)
    with pytest.raises(ValueError):
        entry_leaf(2**64, e)
    with pytest.raises(ValueError):
        entry_leaf(1, e[:31])
    with pytest.raises(ValueError):
        build_tree([])
    with pytest.raises(ValueError):
        build_tree([b"\x00" * 31])


def test_single_leaf_tree():
    leaf = entry_leaf(1, b"\x01" * 32)
    tree = build_tree([leaf])
    assert tree.root == leaf and tree.proof(0) == [] and verify_proof(leaf, leaf, [])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=80), st.data())
def test_properties(leaves, data):
    tree = build_tree(leaves)
    assert isinstance(tree, MerkleTree) and len(tree) == len(leaves)
    assert is_valid_tree(tree.tree) and len(tree.tree) == 2 * len(leaves) - 1
    # sorted ordering: leaves occupy the last n slots, ascending from the end
    assert tree.tree[len(leaves) - 1 :] == sorted(leaves, reverse=True)
    assert make_tree(sorted(leaves)) == tree.tree
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.proof(i)
    assert process_proof(leaves[i], proof) == tree.root
    assert tree.proof_for_leaf(leaves[i]) == tree.proof(leaves.index(leaves[i]))
    if proof:  # any flipped bit breaks it
        j = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
        assert not verify_proof(tree.root, leaves[i], bad)
        assert not verify_proof(tree.root, leaves[i], proof[:-1])
    other = bytes([leaves[i][0] ^ 0x80]) + leaves[i][1:]
    if other not in leaves:
        assert not verify_proof(tree.root, other, proof)
        with pytest.raises(KeyError):
            tree.proof_for_leaf(other)
    # proofs do not depend on the input order of the leaves, only on the set
    shuffled = list(leaves)
    random.Random(len(leaves)).shuffle(shuffled)
    assert build_tree(shuffled).root == tree.root


def test_verify_proof_rejects_malformed_input():
    leaves = [keccak256(bytes([i])) for i in range(5)]
    tree = build_tree(leaves)
    p = tree.proof(2)
    assert verify_proof(tree.root, leaves[2], p)
    assert not verify_proof(tree.root[:31], leaves[2], p)
    assert not verify_proof(tree.root, leaves[2][:31], p)
    assert not verify_proof(tree.root, leaves[2], [p[0][:31]] + p[1:])


def test_benchmark_script_runs_and_reports(tmp_path):
    out = tmp_path / "merkle.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/merkle.py", "--leaves", "3000", "--proofs", "200", "--repeat", "1",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    printed, written = json.loads(proc.stdout), json.loads(out.read_text())
    assert printed == written
    assert printed["leaves"] == 3000 and printed["proof_len"] in (11, 12)  # leaf depth in a 5999-node heap
    for key in ("keccak_raw_per_s", "build_hashes_per_s", "e2e_hashes_per_s", "proofs_per_s", "verifications_per_s"):
        assert printed[key] > 0
