"""Merkle trees byte-compatible with OpenZeppelin's StandardMerkleTree and MerkleProof.sol.

Same bytes as npm ``@openzeppelin/merkle-tree`` 1.0.x (``StandardMerkleTree``) and
``@openzeppelin/contracts/utils/cryptography/MerkleProof.sol``:

* leaf      = keccak256(keccak256(abi.encode(types, values)))   (double hash: a leaf can
              never be mistaken for an inner node, which hashes exactly 64 bytes once)
* node      = keccak256(min(a, b) || max(a, b))                    (commutative, "sorted pair")
* order     = leaves sorted ascending by hash (the library's default ``sortLeaves: true``;
              stable, so equal leaves keep their input order)
* layout    = flat array of 2n-1 nodes: root at 0, children of i at 2i+1 and 2i+2,
              the k-th sorted leaf at index len-1-k
* proof     = sibling hashes from the leaf up to (not including) the root

The ledger's leaves are ``abi.encode(uint64 seq, bytes32 entryHash)``; ``entry_leaf`` hand-encodes
that static pair (24 zero bytes, 8-byte seq, 32-byte hash) for speed.

Pure: no I/O, no web3. Nodes are plain ``bytes`` in a flat ``list`` and every level is built with
one list comprehension over slices, so the per-node cost is close to one keccak call.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Any, Iterable, Sequence

from .codec import hex0x
from .hashing import keccak256

__all__ = [
    "ENTRY_LEAF_TYPES",
    "MerkleTree",
    "StandardMerkleTree",
    "build_entry_tree",
    "build_tree",
    "entry_leaf",
    "entry_leaves",
    "is_valid_tree",
    "leaf_hash",
    "make_tree",
    "node_hash",
    "process_proof",
    "verify_proof",
]

#: leaf encoding of the ledger's anchor batches: (seq, entry_hash)
ENTRY_LEAF_TYPES: tuple[str, str] = ("uint64", "bytes32")

_ZERO24 = b"\x00" * 24
_UINT64_MAX = (1 << 64) - 1


# --------------------------------------------------------------------------- hashing


def node_hash(a: bytes, b: bytes) -> bytes:
    """Commutative pair hash (OpenZeppelin ``Hashes.commutativeKeccak256``)."""
    return keccak256(a + b) if a <= b else keccak256(b + a)


def leaf_hash(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """StandardMerkleTree leaf: keccak256(keccak256(abi.encode(types, values)))."""
    from eth_abi import encode  # local import: only the generic path needs eth_abi

    types = list(types)
    if len(types) != len(values):
        raise ValueError(f"{len(types)} types but {len(values)} values")
    data = encode(types, [_to_abi(t, v) for t, v in zip(types, values)])
    return keccak256(keccak256(data))


def entry_leaf(seq: int, entry_hash: bytes) -> bytes:
    """Leaf of a ledger entry: leaf_hash(("uint64", "bytes32"), (seq, entry_hash)), fast path."""
    if not 0 <= seq <= _UINT64_MAX:
        raise ValueError(f"seq out of uint64 range: {seq}")
    if len(entry_hash) != 32:
        raise ValueError("entry_hash must be 32 bytes")
    return keccak256(keccak256(_ZERO24 + seq.to_bytes(8, "big") + bytes(entry_hash)))


def entry_leaves(entries: Iterable[tuple[int, bytes]]) -> list[bytes]:
    """``entry_leaf`` over many (seq, entry_hash) pairs (validated like ``entry_leaf``)."""
    k = keccak256
    z = _ZERO24
    out = []
    append = out.append
    for seq, h in entries:
        if not 0 <= seq <= _UINT64_MAX or len(h) != 32:
            raise ValueError(f"bad entry leaf input: seq={seq!r}, hash of {len(h)} bytes")
        append(k(k(z + seq.to_bytes(8, "big") + h)))
    return out


# --------------------------------------------------------------------------- trees


def _check_node(node: Any) -> bytes:
    if not isinstance(node, (bytes, bytearray)) or len(node) != 32:
        raise ValueError("Merkle tree nodes must be 32 bytes")
    return bytes(node)


def _fill(tree: list) -> None:
    """Compute the inner nodes of a flat tree whose leaves (indices n-1..2n-2) are set.

    Inner nodes lo..hi-1 only depend on nodes >= hi when lo = hi // 2, so each such block is one
    list comprehension over two strided slices (the left and the right children).
    """
    k = keccak256
    hi = (len(tree) + 1) // 2 - 1  # n - 1: index of the first leaf
    while hi > 0:
        lo = hi // 2
        left = tree[2 * lo + 1 : 2 * hi + 1 : 2]
        right = tree[2 * lo + 2 : 2 * hi + 2 : 2]
        tree[lo:hi] = [k(a + b) if a <= b else k(b + a) for a, b in zip(left, right)]
        hi = lo


def make_tree(leaves: Sequence[bytes]) -> list[bytes]:
    """The library's ``makeMerkleTree``: flat array of 2n-1 nodes, leaves in the given order
    (leaf i at index len-1-i). No sorting: see ``build_tree`` for the standard ordering."""
    n = len(leaves)
    if n == 0:
        raise ValueError("Expected non-zero number of leaves")
    for leaf in leaves:
        _check_node(leaf)
    tree: list = [None] * (n - 1)
    tree.extend(bytes(x) for x in reversed(leaves))
    _fill(tree)
    return tree


def _proof_at(tree: Sequence[bytes], index: int) -> list[bytes]:
    proof = []
    while index > 0:
        proof.append(tree[index + 1 if index % 2 else index - 1])
        index = (index - 1) // 2
    return proof


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Root implied by ``leaf`` and ``proof`` (MerkleProof.processProof)."""
    h = _check_node(leaf)
    k = keccak256
    for p in proof:
        p = _check_node(p)
        h = k(h + p) if h <= p else k(p + h)
    return h


def verify_proof(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """MerkleProof.verify(proof, root, leaf). Malformed input (wrong lengths) gives False."""
    try:
        return process_proof(leaf, proof) == _check_node(root)
    except (ValueError, TypeError):
        return False


def is_valid_tree(tree: Sequence[bytes]) -> bool:
    """The library's ``isValidMerkleTree``: every inner node is the hash of its children."""
    n = len(tree)
    if n == 0 or n % 2 == 0:
        return False
    for node in tree:
        if not isinstance(node, (bytes, bytearray)) or len(node) != 32:
            return False
    for i in range(n // 2):
        if tree[i] != node_hash(tree[2 * i + 1], tree[2 * i + 2]):
            return False
    return True


class MerkleTree:
    """A standard-ordered tree over precomputed leaf hashes (see ``build_tree``).

    ``tree`` is the library's flat array (bytes nodes). Indices given to ``proof``/``leaf``
    are positions in the list passed to ``build_tree`` (the library's "value index").
    """

    __slots__ = ("tree", "_leaves", "_sorted", "_sorted_input", "_index_cache")

    def __init__(self, tree: list[bytes], leaves: list[bytes], sorted_leaves: list[bytes], sorted_input: bool):
        self.tree = tree
        self._leaves = leaves  # input order
        self._sorted = sorted_leaves  # tree order: the k-th is at tree index len(tree)-1-k
        self._sorted_input = sorted_input
        self._index_cache: dict[int, int] | None = None

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def __len__(self) -> int:
        return len(self._leaves)

    def leaf(self, index: int) -> bytes:
        return self._leaves[index]

    @property
    def leaves(self) -> list[bytes]:
        """Leaf hashes in input order (a copy)."""
        return list(self._leaves)

    def tree_index(self, index: int) -> int:
        """Index in ``tree`` of the leaf given at position ``index``."""
        n = len(self._leaves)
        if not -n <= index < n:
            raise IndexError("Index out of bounds")
        index %= n
        if not self._sorted_input:
            return len(self.tree) - 1 - index
        leaf = self._leaves[index]
        pos = bisect_left(self._sorted, leaf)
        if pos + 1 < n and self._sorted[pos + 1] == leaf:
            # duplicate leaf hashes: the sort is stable, so the k-th occurrence in input
            # order takes the k-th slot. Rare (never for ledger entries: seq is unique).
            pos += sum(1 for x in self._leaves[:index] if x == leaf)
        return len(self.tree) - 1 - pos

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from the leaf at input position ``index`` up to the root."""
        return _proof_at(self.tree, self.tree_index(index))

    def proof_for_leaf(self, leaf: bytes) -> list[bytes]:
        """Proof for a leaf hash (its first occurrence)."""
        leaf = _check_node(leaf)
        if self._sorted_input:
            pos = bisect_left(self._sorted, leaf)
            if pos == len(self._sorted) or self._sorted[pos] != leaf:
                raise KeyError("Leaf is not in tree")
            return _proof_at(self.tree, len(self.tree) - 1 - pos)
        if self._index_cache is None:
            cache: dict = {}
            for i, x in enumerate(self._leaves):
                cache.setdefault(x, i)
            self._index_cache = cache
        try:
            i = self._index_cache[leaf]
        except KeyError:
            raise KeyError("Leaf is not in tree") from None
        return _proof_at(self.tree, len(self.tree) - 1 - i)

    def verify(self, leaf: bytes, proof: Sequence[bytes]) -> bool:
        return verify_proof(self.root, leaf, proof)


def build_tree(leaf_hashes: Sequence[bytes], sort_leaves: bool = True) -> MerkleTree:
    """Tree over precomputed leaf hashes, ordered as StandardMerkleTree orders them.

    ``sort_leaves=True`` is the library's default (and what ``StandardMerkleTree.of`` does).
    """
    n = len(leaf_hashes)
    if n == 0:
        raise ValueError("Expected non-zero number of leaves")
    # validate with C-level passes (map/set): a per-item Python loop would cost ~15% of the build
    leaves = list(leaf_hashes)
    if set(map(type, leaves)) != {bytes}:
        leaves = [_check_node(x) for x in leaves]
    elif set(map(len, leaves)) != {32}:
        raise ValueError("Merkle tree nodes must be 32 bytes")
    ordered = sorted(leaves) if sort_leaves else leaves
    tree: list = [None] * (n - 1)
    tree.extend(reversed(ordered))
    _fill(tree)
    return MerkleTree(tree, leaves, ordered, sort_leaves)


def build_entry_tree(entries: Iterable[tuple[int, bytes]]) -> MerkleTree:
    """Tree of ledger entries (seq, entry_hash): leaves ``entry_leaf``, standard ordering."""
    return build_tree(entry_leaves(entries))


# --------------------------------------------------------------------------- standard tree


def _to_abi(typ: str, value: Any) -> Any:
    """Normalise a JSON-friendly value (decimal strings, 0x hex) to what eth_abi encodes."""
    if typ.endswith("]"):
        inner = typ[: typ.rindex("[")]
        return [_to_abi(inner, v) for v in value]
    if typ.startswith(("uint", "int")):
        if isinstance(value, bool):
            raise TypeError(f"{typ} value must be an integer, not bool")
        if isinstance(value, str):  # decimal like the library's dumps; 0x hex accepted too
            v = value.strip()
            return int(v, 16) if v.lower().lstrip("-").startswith("0x") else int(v, 10)
        return int(value)
    if typ.startswith("bytes"):
        if isinstance(value, str):
            return bytes.fromhex(value[2:] if value[:2] in ("0x", "0X") else value)
        return bytes(value)
    return value


def _to_json(typ: str, value: Any) -> Any:
    """The JSON form the npm library's dump holds: integers as decimal strings, bytes as 0x hex."""
    if typ.endswith("]"):
        inner = typ[: typ.rindex("[")]
        return [_to_json(inner, v) for v in value]
    if typ.startswith(("uint", "int")) and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if typ.startswith("bytes") and isinstance(value, (bytes, bytearray)):
        return hex0x(bytes(value))
    return value


def _unhex(s: str) -> bytes:
    if not isinstance(s, str) or not s.startswith("0x"):
        raise ValueError(f"expected 0x-prefixed hex, got {s!r}")
    return bytes.fromhex(s[2:])


class StandardMerkleTree:
    """Python twin of ``StandardMerkleTree`` from ``@openzeppelin/merkle-tree``.

    ``values`` are kept in their JSON form (what ``dump()`` writes and the library reads):
    integers as decimal strings, bytes as 0x hex, addresses and strings as given.
    ``root``, proofs and leaves are ``bytes``; ``dump()`` renders them as 0x hex.
    """

    FORMAT = "standard-v1"

    def __init__(self, tree: list[bytes], values: list[tuple[Any, int]], leaf_encoding: Sequence[str]):
        self.tree = tree
        self.values = values  # [(json value, tree index)] in input order
        self.leaf_encoding = list(leaf_encoding)
        self._lookup: dict[bytes, int] | None = None

    # -- construction
    @classmethod
    def of(cls, values: Sequence[Sequence[Any]], leaf_encoding: Sequence[str], sort_leaves: bool = True):
        enc = list(leaf_encoding)
        jvalues = [[_to_json(t, v) for t, v in zip(enc, value)] for value in values]
        for jv in jvalues:
            if len(jv) != len(enc):
                raise ValueError("every value needs one item per leaf type")
        hashes = [leaf_hash(enc, v) for v in jvalues]
        n = len(hashes)
        if n == 0:
            raise ValueError("Expected non-zero number of leaves")
        order = sorted(range(n), key=hashes.__getitem__) if sort_leaves else list(range(n))
        tree: list = [None] * (2 * n - 1)
        tree_index = [0] * n
        for k, vi in enumerate(order):
            tree[2 * n - 2 - k] = hashes[vi]
            tree_index[vi] = 2 * n - 2 - k
        _fill(tree)
        return cls(tree, [(jvalues[i], tree_index[i]) for i in range(n)], enc)

    @classmethod
    def load(cls, data: dict) -> "StandardMerkleTree":
        if data.get("format") != cls.FORMAT:
            raise ValueError(f"Unknown format '{data.get('format')}'")
        if data.get("leafEncoding") is None:
            raise ValueError("Expected leaf encoding")
        tree = [_unhex(x) for x in data["tree"]]
        values = [(v["value"], int(v["treeIndex"])) for v in data["values"]]
        self = cls(tree, values, data["leafEncoding"])
        self.validate()
        return self

    def dump(self) -> dict:
        return {
            "format": self.FORMAT,
            "leafEncoding": list(self.leaf_encoding),
            "tree": [hex0x(x) for x in self.tree],
            "values": [{"value": v, "treeIndex": i} for v, i in self.values],
        }

    # -- queries
    @property
    def root(self) -> bytes:
        return self.tree[0]

    def __len__(self) -> int:
        return len(self.values)

    def at(self, index: int) -> Any:
        return self.values[index][0]

    def entries(self):
        for i, (v, _) in enumerate(self.values):
            yield i, v

    def leaf_hash(self, value: Sequence[Any]) -> bytes:
        return leaf_hash(self.leaf_encoding, [_to_json(t, x) for t, x in zip(self.leaf_encoding, value)])

    def leaf_lookup(self, value: Sequence[Any]) -> int:
        if self._lookup is None:
            self._lookup = {self.tree[ti]: i for i, (_, ti) in enumerate(self.values)}
        try:
            return self._lookup[self.leaf_hash(value)]
        except KeyError:
            raise ValueError("Leaf is not in tree") from None

    def _validate_value_at(self, index: int) -> None:
        if not 0 <= index < len(self.values):
            raise IndexError("Index out of bounds")
        value, ti = self.values[index]
        if not (0 <= ti < len(self.tree)) or self.tree[ti] != leaf_hash(self.leaf_encoding, value):
            raise ValueError("Merkle tree does not contain the expected value")

    def validate(self) -> None:
        for i in range(len(self.values)):
            self._validate_value_at(i)
        if not is_valid_tree(self.tree):
            raise ValueError("Merkle tree is invalid")

    def get_proof(self, leaf: int | Sequence[Any]) -> list[bytes]:
        """Proof for a value index (int) or a value (sequence)."""
        index = leaf if isinstance(leaf, int) else self.leaf_lookup(leaf)
        self._validate_value_at(index)
        ti = self.values[index][1]
        if 2 * ti + 1 < len(self.tree):  # a leaf has no children
            raise ValueError("Index is not a leaf")
        proof = _proof_at(self.tree, ti)
        if process_proof(self.tree[ti], proof) != self.root:  # sanity check, as the library does
            raise AssertionError("Unable to prove value")
        return proof

    def verify(self, leaf: int | Sequence[Any], proof: Sequence[bytes]) -> bool:
        if isinstance(leaf, int):
            self._validate_value_at(leaf)
            h = self.tree[self.values[leaf][1]]
        else:
            h = self.leaf_hash(leaf)
        return verify_proof(self.root, h, proof)

    @staticmethod
    def verify_value(root: bytes, leaf_encoding: Sequence[str], value: Sequence[Any], proof: Sequence[bytes]) -> bool:
        """The library's static ``StandardMerkleTree.verify(root, leafEncoding, leaf, proof)``."""
        return verify_proof(root, leaf_hash(leaf_encoding, value), proof)
