"""Test-only helpers for a chain: mining empty blocks, the contract's own views, and the
transcript of every byte the chain holds (the privacy audit of invariant 6). They reach into
web3 directly; the adapters carry only what the ledger and the verifier use."""
from __future__ import annotations


def mine(chain, blocks: int = 1) -> None:
    """Empty blocks: eth-tester on the embedded chain, evm_mine on a dev node (Hardhat)."""
    if getattr(chain, "_tester", None) is not None:
        chain._tester.mine_blocks(blocks)
    else:
        for _ in range(blocks):
            chain.w3.provider.make_request("evm_mine", [])


def contract_view(chain, fn: str, *args):
    """Call one view function of the Anchor contract through its full ABI (e.g. the
    contract's own `accumulate`, `GENESIS`, `isAnchorer`)."""
    from ledger.chain.web3_anchor import load_artifact
    c = chain.w3.eth.contract(address=chain.contract_address, abi=load_artifact()["abi"])
    out = getattr(c.functions, fn)(*args).call()
    return bytes(out) if isinstance(out, (bytes, bytearray)) else out


def transcript(chain, *, from_block: int = 0) -> list[bytes]:
    """Every byte the chain holds that the ledger could have leaked: each transaction's input
    and every log's topics and data, in blocks from_block..latest."""
    w3, out = chain.w3, []
    for n in range(from_block, int(w3.eth.block_number) + 1):
        block = w3.eth.get_block(n, full_transactions=True)
        for tx in block["transactions"]:
            # JSON-RPC nodes call it "input"; eth-tester's formatter leaves "data"
            out.append(bytes(tx["input"] if "input" in tx else tx["data"]))
            for lg in w3.eth.get_transaction_receipt(tx["hash"])["logs"]:
                out.extend(bytes(t) for t in lg["topics"])
                out.append(bytes(lg["data"]))
    return out
