"""The anchoring key's balance, for `ayni doctor`, the metrics endpoint and `ayni anchor`'s warning.

    from ledger.chain.balance import anchor_key_balance_wei, batches_affordable
    wei = anchor_key_balance_wei("https://rpc.gnosischain.com", keystore="anchor.json")

Needs no passphrase: a V3 keystore names its address in clear. Reads one `eth_getBalance`
(latest block); raises ChainUnavailable (node down) or ChainError (bad address, unreadable
keystore), never a web3 or requests exception.
"""
from __future__ import annotations

import json
from pathlib import Path

from ledger.chain.errors import ChainError, ChainUnavailable

ANCHOR_GAS = 29_786  # = web3_anchor.ANCHOR_GAS, without importing web3 here


def keystore_address(path: str | Path) -> str:
    """The address a V3 keystore declares (read without decrypting it), 0x-prefixed."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        address = str(doc["address"]).lower().removeprefix("0x")
        bytes.fromhex(address)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ChainError(f"cannot read the anchoring key's address from {path}: {exc}") from None
    if len(address) != 40:
        raise ChainError(f"{path} declares no valid address")
    return "0x" + address


def anchor_key_balance_wei(chain_url: str, *, address: str | None = None, keystore: str | Path | None = None,
                           timeout: float = 5.0, expected_chain_id: int | None = None) -> int:
    """Balance in wei of the anchoring key at `chain_url` (JSON-RPC): give its `address`, or the
    `keystore` file it lives in. With `expected_chain_id` (a preset's, $AYNI_CHAIN_ID) a node on
    another chain is refused: its balance says nothing about what pays for anchoring."""
    from eth_utils import to_checksum_address
    from web3 import HTTPProvider, Web3

    from ledger.verify.anchor_reader import CONNECTION_ERRORS, short

    if address is None:
        if keystore is None:
            raise ChainError("key balance: give the anchoring key's address or its keystore file")
        address = keystore_address(keystore)
    try:
        who = to_checksum_address(address)
    except (ValueError, TypeError):
        raise ChainError(f"key balance: not an address: {address!r}") from None
    if not chain_url.startswith(("http://", "https://")):
        raise ChainError(f"unsupported chain URL {chain_url!r}: only http:// and https:// JSON-RPC")
    w3 = Web3(HTTPProvider(chain_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))
    try:
        if expected_chain_id is not None and (got := int(w3.eth.chain_id)) != expected_chain_id:
            raise ChainError(f"key balance: {chain_url} reports chain id {got}, not {expected_chain_id}")
        wei = int(w3.eth.get_balance(who))
    except ChainError:
        raise
    except CONNECTION_ERRORS as exc:
        raise ChainUnavailable(f"eth_getBalance: chain node {chain_url} unavailable ({short(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - a node's error reply: one message, never a traceback
        raise ChainError(f"eth_getBalance at {chain_url}: {short(exc)}") from None
    if wei < 0:
        raise ChainError(f"eth_getBalance at {chain_url}: a negative balance ({wei}) is no balance")
    return wei


def batches_affordable(balance_wei: int, fee_per_gas_wei: int, gas_per_batch: int = ANCHOR_GAS) -> int:
    """How many anchor transactions the balance pays at this fee per gas (each at most
    gas_per_batch gas). A zero fee (a free local chain) counts as unlimited: 2**63 - 1."""
    cost = fee_per_gas_wei * gas_per_batch
    return balance_wei // cost if cost > 0 else 2**63 - 1
