"""Chain presets (ledger/chain/presets.json): the public chains Ayni knows by name, with the
chain id a node must report, the confirmations to wait, the window in which confirmed batches
are re-checked for reorgs, a typical fee and the native currency. Chosen by name
(`ayni anchor --chain-preset gnosis`, $AYNI_CHAIN_PRESET); a node reporting another chain id
is refused, because anchoring on the wrong chain spends real money and proves nothing to the
members who check the chain the cooperative published. No web3 here."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ledger.chain.errors import ChainError, WrongContract

PRESETS_FILE = Path(__file__).with_name("presets.json")
SCHEMA = "ayni.chain-presets/1"


class UnknownPreset(ChainError):
    code = "unknown_preset"


class WrongChain(WrongContract):
    """The node is on another chain than the preset names: nothing is sent."""

    code = "wrong_chain"


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    chain_id: int
    native: str
    block_time_s: float
    confirmations: int
    recheck_blocks: int
    typical_fee_gwei: float
    suggested_max_fee_gwei: float
    note: str
    sources: dict

    def check_chain_id(self, chain_id: int, url: str = "the node") -> None:
        if chain_id != self.chain_id:
            known = {p.chain_id: p.name for p in load().values()}
            other = f" ({known[chain_id]})" if chain_id in known else ""
            raise WrongChain(f"chain preset {self.name!r} is {self.label}, chain id {self.chain_id}, but {url} "
                             f"reports chain id {chain_id}{other}: refusing to anchor on another chain than the "
                             "preset names (fix --chain or --chain-preset)")


_cache: dict[str, Preset] | None = None


def load(path: Path | str | None = None) -> dict[str, Preset]:
    global _cache
    if path is None and _cache is not None:
        return _cache
    p = Path(path) if path is not None else PRESETS_FILE
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ChainError(f"cannot read chain presets {p}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("presets"), dict):
        raise ChainError(f"chain presets {p}: schema must be {SCHEMA!r} with a 'presets' object")
    out = {}
    for name, d in doc["presets"].items():
        try:
            out[name] = Preset(name, str(d["label"]), int(d["chain_id"]), str(d["native"]), float(d["block_time_s"]),
                               int(d["confirmations"]), int(d["recheck_blocks"]), float(d["typical_fee_gwei"]),
                               float(d["suggested_max_fee_gwei"]), str(d["note"]), dict(d["sources"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainError(f"chain presets {p}: preset {name!r} is malformed ({exc})") from None
        if out[name].confirmations < 1 or out[name].recheck_blocks < out[name].confirmations:
            raise ChainError(f"chain presets {p}: preset {name!r} needs confirmations >= 1 and "
                             "recheck_blocks >= confirmations")
    if path is None:
        _cache = out
    return out


ALIASES = {"op": "optimism", "op-mainnet": "optimism", "arbitrum-one": "arbitrum", "gnosis-chain": "gnosis",
           "xdai": "gnosis", "anvil": "hardhat", "ganache": "dev", "geth-dev": "dev"}


def get(name: str) -> Preset:
    presets = load()
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in presets:
        raise UnknownPreset(f"unknown chain preset {name!r} (known: {', '.join(sorted(presets))}; "
                            "ledger/chain/presets.json)")
    return presets[key]


def for_chain_id(chain_id: int) -> Preset | None:
    return next((p for p in load().values() if p.chain_id == chain_id), None)
