"""`ayni-wallet verify`: check a receipt against the chain, and against the community the
member pinned: entry -> hash -> Merkle proof -> root anchored in the pinned contract on the
pinned chain; with the community's signing domain pinned too, the entry's digest recomputed and
its signature recovered to the payer.

Why the pins: a receipt names the contract that anchors it, and anyone can deploy an Anchor
contract and anchor a forged entry there. Checked against the contract it names, a forged
receipt would verify; checked against the contract the member pinned (wallet.toml, the
environment or a flag; the cooperative publishes it), it does not. Uses ledger.core and the
chain node only (ledger/verify/anchor_reader.py); the cooperative's server is not asked.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ledger.core.receipts import ReceiptInvalid, check_receipt_signature, verify_receipt
from ledger.core.text import visible
from ledger.core.trust_root import TrustRoot

from .config import JSON_OPT, fail, handled, load_config

HOW_TO_PIN = ("a receipt is proof only against the community's own anchor contract, which this wallet "
              "has not pinned: set anchor_contract = \"0x...\" and chain_id = N in wallet.toml (or "
              "AYNI_ANCHOR_CONTRACT and AYNI_CHAIN_ID, or --contract and --chain-id), as the cooperative "
              "publishes them (GET /v1/community: anchor.contract, domain.chainId)")


def check(doc: object, reader, trust: TrustRoot) -> list[str]:
    """Problems of the receipt `doc` against the pinned `trust` root, reading the chain with
    `reader` (an AnchorReader at the pinned contract); empty when it holds."""
    if not isinstance(doc, dict):
        return ["receipt is invalid: not an Ayni receipt"]
    problems = [m.detail for m in trust.check_anchor_target(doc.get("contract"), doc.get("chainId"),
                                                            what="the receipt")]
    if problems:
        return problems  # anchored elsewhere: what that chain holds proves nothing here
    hostile = _hostile_batch(doc, reader)
    if hostile:
        return [hostile]
    try:
        problems = verify_receipt(doc, reader)
    except ReceiptInvalid as exc:
        return [f"receipt is invalid: {exc}"]
    domain = trust.domain()
    if domain is not None and not problems:
        problems = check_receipt_signature(doc, domain)
    return problems


def _suspect_batch(doc: dict, reader, retirement) -> list[str]:
    """A receipt's batch anchored after the last checkpoint, before a hostile batch, is only as
    good as the log it matches: the leaked key could have sent it (docs/anchoring.md)."""
    batch = doc.get("batch")
    first = batch.get("firstSeq") if isinstance(batch, dict) else None
    if type(first) is not int or first >= retirement.at_seq:
        return []
    through = reader.checkpointed_through(before_seq=retirement.at_seq)
    if first <= through:
        return []  # on chain before a checkpoint the admin (or anyone) took: not in the window
    event = reader.find_batch(first)
    sender = reader.sender_of(event.tx_hash) if event is not None else None
    same = (f", by the same key {sender} that sent the hostile batch" if sender and sender == retirement.sender
            else f", by key {sender or '?'}")
    note = (f"this receipt's batch {first}..{batch.get('lastSeq')} was anchored after the last checkpoint (seq "
            f"{through}){same}: a leaked key could have anchored it, so it proves the entry only as far as the "
            "ledger's log matches it (an auditor's `ayni-wallet reconcile` checks that)")
    return [note]


def _hostile_batch(doc: dict, reader) -> str | None:
    """Why a receipt whose batch no honest anchorer sends (ledger/verify/chain_types.py
    `implausible`: past seq 2**62 or over 2**20 entries) proves nothing, naming the hostile
    batch the chain holds; None for a plausible batch (the usual checks follow)."""
    from ledger.verify.chain_types import implausible
    batch = doc.get("batch")
    if not isinstance(batch, dict):
        return None
    first, last = batch.get("firstSeq"), batch.get("lastSeq")
    if type(first) is not int or type(last) is not int or not implausible(first, last):
        return None
    retirement = reader.retirement()
    named = (f"; the chain holds a {retirement.hostile_batch}"
             if retirement is not None and retirement.hostile else "")
    return (f"the receipt's batch {first}..{last} is a hostile batch, not a ledger batch (no ledger reaches "
            f"seq 2**62 or batches over 2**20 entries): it proves nothing{named}")


def warnings(reader, doc: object = None) -> list[str]:
    """What a member must know about the pinned contract even when a receipt holds: above all a
    hostile batch (a leaked anchoring key froze the contract or jumped it far ahead of any log,
    with or without the admin's retire() after it), and what still proves anything then; with
    the receipt `doc`, whether its own batch lies in the window a leaked key could have forged."""
    retirement = reader.retirement()
    notes = [retirement.message] if retirement is not None and retirement.hostile else []
    if notes and isinstance(doc, dict):
        notes += _suspect_batch(doc, reader, retirement)
    if reader.admin_is_anchorer():
        notes.append("the contract's anchoring key is also its admin: if that key leaks, nobody can retire the "
                     "contract and the attacker can add anchoring keys (ask the cooperative to move the admin "
                     "role to a separate, cold key)")
    return notes


@handled
def verify(receipt: Path = typer.Argument(..., help="Receipt JSON (`ayni-wallet receipt` stores them)"),
           chain: str = typer.Option(None, "--chain", help="JSON-RPC URL of a node of the anchoring chain "
                                     "(else $AYNI_CHAIN_URL, wallet.toml chain_url)"),
           contract: str = typer.Option(None, "--contract", help="The community's Anchor contract (else "
                                        "$AYNI_ANCHOR_CONTRACT, wallet.toml anchor_contract)"),
           chain_id: int = typer.Option(None, "--chain-id", help="The chain id of the community (else "
                                        "$AYNI_CHAIN_ID, wallet.toml chain_id)"),
           as_json: bool = JSON_OPT) -> None:
    """Check a receipt against the pinned contract: entry -> hash -> Merkle proof -> anchored root.

    Exit 0 when it holds; 1 when it does not; 2 when it cannot be checked (no pin, no node)."""
    from ledger.verify.anchor_reader import AnchorReader
    from ledger.verify.chain_types import ChainError
    cfg = load_config(chain_url=chain, anchor_contract=contract, chain_id=chain_id)
    trust = TrustRoot(contract=cfg.anchor_contract, anchor_chain_id=cfg.anchor_chain_id, chain_id=cfg.chain_id,
                      community_salt=cfg.community_salt)
    try:
        doc = json.loads(receipt.read_text())
    except OSError as exc:
        fail(f"cannot read {receipt}: {exc.strerror}", 2)
    except ValueError as exc:
        fail(f"{receipt} is not JSON: {exc}", 2)
    if trust.contract is None or trust.anchor_chain is None:
        fail(HOW_TO_PIN, 2)
    if not cfg.chain_url:
        fail("give --chain URL (or AYNI_CHAIN_URL): a node of the community's anchoring chain", 2)
    try:
        reader = AnchorReader.connect(cfg.chain_url, contract_address=trust.contract,
                                      expected_chain_id=trust.anchor_chain)
        problems = check(doc, reader, trust)
        notes = warnings(reader, doc)
    except ChainError as exc:
        fail(f"{exc.code}: {exc}", 2)
    ok = not problems
    if as_json:
        typer.echo(json.dumps({"ok": ok, "problems": problems, "warnings": notes,
                               "signatureChecked": ok and trust.domain() is not None,
                               "seq": doc.get("values", [None])[0] if isinstance(doc, dict) else None}))
    elif ok:
        b = doc["batch"]
        signed = ("; the payer's signature recovers in the pinned community" if trust.domain() is not None else
                  "; signature not checked (pin community_salt to check it)")
        typer.echo(visible(f"OK: entry {doc['values'][0]} is in batch {b['firstSeq']}..{b['lastSeq']} anchored in "
                           f"{doc['contract']} on chain {doc['chainId']} (tx {doc['txHash']}){signed}"))
    else:
        for p in problems:
            typer.echo(visible(f"FAILED: {p}"), err=True)
    if not as_json:
        for note in notes:
            typer.echo(visible(f"WARNING: {note}"), err=True)
    raise typer.Exit(0 if ok else 1)
