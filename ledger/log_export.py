"""`ayni export-log`: the whole entry log, with the balance sheet and anchor records at its head,
in the format of ledger/core/log_format.py, written atomically (ledger/files.py: temp file, fsync,
rename, fsync of the folder), streamed so a long log is never held in memory."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from .core import log_format
from .files import write_atomic
from .service import Ledger


def export_log(ledger: Ledger, out: str | os.PathLike, *, anchor_contract: str | None = None) -> dict:
    head_seq, head_chain_hash, positions = ledger.balance_sheet()
    batches = []
    if anchor_contract:
        from .anchoring import Anchoring
        for b in Anchoring(ledger, contract=anchor_contract).batches(include_failed=False):
            if b["last_seq"] <= head_seq:
                batches.append({"firstSeq": b["first_seq"], "lastSeq": b["last_seq"],
                                "root": "0x" + bytes(b["root"]).hex(), "status": b["status"],
                                "txHash": b["tx_hash"]})
    community = ledger.genesis.community if ledger.genesis else ""
    out = Path(out)
    count = 0

    def lines() -> Iterator[str]:
        nonlocal count
        yield log_format.dumps(log_format.header(community, head_seq, ledger.clock())) + "\n"
        for entry in ledger.iter_entries():
            if entry.seq > head_seq:
                break
            yield log_format.dumps(entry.as_dict()) + "\n"
            count += 1
        yield log_format.dumps({"end": {
            "headSeq": head_seq, "headChainHash": "0x" + head_chain_hash.hex(), "entries": count,
            "balances": [{"account": a, "currency": c, "balance": p.balance, "creditLimit": p.credit_limit,
                          "ceiling": p.ceiling} for (a, c), p in sorted(positions.items())],
            "anchors": {"contract": anchor_contract, "batches": batches}}}) + "\n"

    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lines())  # 0600 like before: the log names every account
    return {"path": str(out), "entries": count, "headSeq": head_seq}
