"""`ayni export-log`: the whole entry log, with the balance sheet and anchor records at its head,
in the format of ledger/core/log_format.py, written atomically (temp file, then rename)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .core import log_format
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
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".partial", dir=out.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as f:
            f.write(log_format.dumps(log_format.header(community, head_seq, ledger.clock())) + "\n")
            for entry in ledger.iter_entries():
                if entry.seq > head_seq:
                    break
                f.write(log_format.dumps(entry.as_dict()) + "\n")
                count += 1
            f.write(log_format.dumps({"end": {
                "headSeq": head_seq, "headChainHash": "0x" + head_chain_hash.hex(), "entries": count,
                "balances": [{"account": a, "currency": c, "balance": p.balance, "creditLimit": p.credit_limit,
                              "ceiling": p.ceiling} for (a, c), p in sorted(positions.items())],
                "anchors": {"contract": anchor_contract, "batches": batches}}}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"path": str(out), "entries": count, "headSeq": head_seq}
