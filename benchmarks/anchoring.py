"""Anchoring benchmark: gas per anchor call for batch sizes 1..100,000 on the embedded
EVM (py-evm), the whole pipeline (entries -> Merkle root -> anchor) for real ledger
entries, and the Merkle figures of benchmarks/merkle.py, all from one run. JSON out.

    python benchmarks/anchoring.py [--leaves 1000000] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import merkle as merkle_bench  # noqa: E402

from ledger import signing  # noqa: E402
from ledger.anchoring import Anchoring  # noqa: E402
from ledger.chain import AnchorChain  # noqa: E402
from ledger.community import new_genesis  # noqa: E402
from ledger.core.hashing import keccak256  # noqa: E402
from ledger.core.typed_data import address_of_key  # noqa: E402
from ledger.service import Ledger  # noqa: E402

SIZES = (1, 10, 100, 1_000, 10_000, 100_000)


def gas_by_batch_size() -> list[dict]:
    """Anchor consecutive batches of each size; the root is a hash, its leaves do not matter
    to the contract, so this measures exactly what a cooperative pays per call."""
    chain = AnchorChain.embedded()
    chain.deploy()
    out, first = [], 1
    for size in SIZES:
        tx = chain.send_anchor(keccak256(first.to_bytes(8, "big")), first, first + size - 1)
        st = chain.wait(tx)
        out.append({"batch_size": size, "first_seq": first, "gas_used": st.gas_used})
        first += size
    return out


def pipeline(transfers: int) -> dict:
    """Real signed transfers on SQLite, then anchored in one batch: time and gas per transfer."""
    with tempfile.TemporaryDirectory() as d:
        ledger = Ledger.open(f"sqlite:///{d}/a.db")
        treasurer = signing.new_key()
        ledger.initialise(new_genesis("bench", address_of_key(treasurer)))
        domain = ledger.genesis.domain
        keys = [signing.new_key() for _ in range(20)]
        ledger.submit_many([signing.open_account(treasurer, domain, account=address_of_key(k)) for k in keys])
        subs = [signing.transfer(keys[i % 20], domain, payee=address_of_key(keys[(i + 1) % 20]),
                                 currency="CRED", amount=1) for i in range(transfers)]
        for k in range(0, len(subs), 500):
            ledger.submit_many(subs[k:k + 500])
        chain = AnchorChain.embedded()
        chain.deploy()
        start = time.perf_counter()
        report = Anchoring(ledger, chain, max_batch=10**9).run()
        elapsed = time.perf_counter() - start
        ledger.engine.dispose()
    return {"entries": report.anchored_through, "transfers": transfers, "seconds": elapsed,
            "gas_used": report.gas_used[0], "gas_per_transfer": report.gas_used[0] / transfers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--transfers", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result = {
        "benchmark": "anchoring",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "gas_by_batch_size": gas_by_batch_size(),
        "pipeline": pipeline(args.transfers),
        "merkle": merkle_bench.run(args.leaves, 20_000, args.repeat),
    }
    gas = [g["gas_used"] for g in result["gas_by_batch_size"]]
    result["gas_spread_across_sizes"] = max(gas) - min(gas)
    result["target_gas_per_anchor_le_31500"] = max(gas) <= 31_500
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
