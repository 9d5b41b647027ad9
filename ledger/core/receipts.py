"""Receipts: a JSON file a member keeps to prove, with any Ethereum node, that their
entry is part of an anchored batch. Pure: building and the offline half of checking.

The leaf of entry `seq` is the OpenZeppelin StandardMerkleTree leaf of
`abi.encode(uint64 seq, bytes32 entryHash)`; the batch root is what the Anchor
contract holds for `firstSeq..lastSeq` (docs/anchoring.md)."""
from __future__ import annotations

from typing import Protocol

from .codec import hex0x, parse_b32
from .entries import Entry, canonical_bytes
from .errors import InvalidInput, LedgerError
from .hashing import keccak256
from .merkle import ENTRY_LEAF_TYPES, MerkleTree, entry_leaf, process_proof
from .typed_data import Domain, recover_signer

RECEIPT_VERSION = 1


def build_receipt(entry: Entry, tree: MerkleTree, *, first_seq: int, last_seq: int, chain_id: int,
                  contract: str, tx_hash: str, block: int | None, community: str) -> dict:
    index = entry.seq - first_seq  # leaves are built in seq order
    leaf = tree.leaf(index)
    if leaf != entry_leaf(entry.seq, entry.entry_hash):
        raise ValueError("tree does not hold this entry at its position")
    return {
        "version": RECEIPT_VERSION,
        "kind": "ayni-receipt",
        "community": community,
        "entry": {"seq": entry.seq, "kind": entry.kind, "at": entry.at, "body": entry.body},
        "entryHash": hex0x(entry.entry_hash),
        "leafEncoding": list(ENTRY_LEAF_TYPES),
        "values": [entry.seq, hex0x(entry.entry_hash)],
        "leaf": hex0x(leaf),
        "proof": [hex0x(p) for p in tree.proof(index)],
        "root": hex0x(tree.root),
        "batch": {"firstSeq": first_seq, "lastSeq": last_seq},
        "chainId": chain_id,
        "contract": contract,
        "txHash": tx_hash,
        "block": block,
    }


class ReceiptInvalid(ValueError):
    """The receipt contradicts itself (edited, truncated, or not a receipt)."""


def check_receipt_offline(receipt: object) -> tuple[bytes, int, int]:
    """Everything that needs no chain: entry content -> entry hash -> leaf -> proof -> root,
    and the seq inside the batch range. Returns (root, firstSeq, lastSeq) to check on chain."""
    if not isinstance(receipt, dict) or receipt.get("kind") != "ayni-receipt":
        raise ReceiptInvalid("not an Ayni receipt")
    if receipt.get("version") != RECEIPT_VERSION:
        raise ReceiptInvalid(f"unsupported receipt version {receipt.get('version')!r}")
    try:
        seq, entry_hash = receipt["values"]
        batch = receipt["batch"]
        first, last = int(batch["firstSeq"]), int(batch["lastSeq"])
        entry = receipt.get("entry")
        proof = [parse_b32(p, "proof node") for p in receipt["proof"]]
        root = parse_b32(receipt["root"], "root")
        leaf = parse_b32(receipt["leaf"], "leaf")
        entry_hash_b = parse_b32(entry_hash, "entryHash")
    except InvalidInput as exc:  # hex: the one rule of ledger.core.codec, reported as a receipt fault
        raise ReceiptInvalid(f"receipt is malformed: {exc.message}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ReceiptInvalid(f"receipt is malformed: {exc}") from None
    if receipt.get("entryHash") != entry_hash:
        raise ReceiptInvalid("entryHash and values disagree")
    if not isinstance(seq, int) or not first <= seq <= last:
        raise ReceiptInvalid(f"seq {seq!r} is outside the batch {first}..{last}")
    if entry is not None:
        try:
            recomputed = keccak256(canonical_bytes(entry["seq"], entry["kind"], entry["at"], entry["body"]))
        except Exception as exc:  # noqa: BLE001 - any malformed entry is an invalid receipt
            raise ReceiptInvalid(f"entry is malformed: {exc}") from None
        if entry["seq"] != seq or recomputed != entry_hash_b:
            raise ReceiptInvalid("the entry's content does not hash to entryHash (edited entry?)")
    if entry_leaf(seq, entry_hash_b) != leaf:
        raise ReceiptInvalid("leaf is not the hash of (seq, entryHash)")
    if process_proof(leaf, proof) != root:
        raise ReceiptInvalid("the proof does not lead from the leaf to the root")
    return root, first, last


def check_receipt_signature(receipt: dict, domain: Domain) -> list[str]:
    """With the community's EIP-712 domain pinned: the entry's digest recomputed from its signed
    fields, and its signature recovered to the signer the entry names (the payer of a transfer).
    An anchored receipt then proves more than "the server committed to this": the member whose
    key signed it did. Problems found; empty when both hold. Unsigned kinds have nothing to check."""
    from .state import action_from_body
    entry = receipt.get("entry")
    if not isinstance(entry, dict) or not isinstance(entry.get("body"), dict):
        return ["the receipt carries no entry to check the signature of"]
    kind, body = entry.get("kind"), entry["body"]
    if "signature" not in body:
        return []
    try:
        action, signer, signature = action_from_body(kind, body)
        digest = domain.digest(action.struct_hash())
        if body.get("digest") != hex0x(digest):
            return [f"the entry's digest is not the digest of its fields in the pinned domain "
                    f"(recomputed {hex0x(digest)}): edited, or signed for another community"]
        recovered = recover_signer(digest, signature)
    except (LedgerError, KeyError, TypeError, ValueError) as exc:
        return [f"the entry's signed fields are malformed: {exc}"]
    if recovered != signer:
        return [f"the signature recovers to {recovered}, not to {signer}, who the entry says signed it"]
    return []


class ChainView(Protocol):
    """What checking a receipt needs from a chain (ledger.verify.anchor_reader.AnchorReader)."""

    chain_id: int
    contract_address: str | None

    def find_batch(self, first_seq: int): ...

    def is_anchored_on_chain(self, root: bytes, first_seq: int, last_seq: int) -> bool: ...


def verify_receipt(receipt: dict, chain: ChainView) -> list[str]:
    """Problems found, empty when the receipt holds: the offline checks, then the batch's
    root and range as the chain holds them, then the accumulator replay to the contract's
    head. Raises ReceiptInvalid for a receipt that contradicts itself."""
    root, first, last = check_receipt_offline(receipt)
    if int(receipt.get("chainId", -1)) != chain.chain_id:
        return [f"the receipt is for chain {receipt.get('chainId')}, the node serves chain {chain.chain_id}"]
    if str(receipt.get("contract", "")).lower() != str(chain.contract_address).lower():
        return [f"the receipt names contract {receipt.get('contract')}, not {chain.contract_address}"]
    event = chain.find_batch(first)
    if event is None:
        return [f"no batch starting at seq {first} was ever anchored in {chain.contract_address}"]
    if (event.root, event.last_seq) != (root, last):
        return [f"the chain's batch at seq {first} has root 0x{event.root.hex()} (through {event.last_seq}), "
                f"not the receipt's 0x{root.hex()} (through {last})"]
    if not chain.is_anchored_on_chain(root, first, last):
        return ["the batch's event does not replay to the contract's current head"]
    return []
