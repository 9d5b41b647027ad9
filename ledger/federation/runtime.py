"""A node taking part in a federation, as a server runs it: the FederationNode over this
ledger with its node key, and the transport to its peers. Built from the environment that
`ayni serve` sets for its workers (the node key stays in its encrypted keystore; each worker
decrypts it, as the anchoring key is handled)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core import errors as E
from ..core.federation import Alliance
from .driver import Send, Transport

ENV_KEYSTORE = "AYNI_NODE_KEYSTORE"
ENV_PASSWORD = "AYNI_NODE_PASSWORD"
ENV_PASSWORD_FILE = "AYNI_NODE_PASSWORD_FILE"
ENV_PUBLIC_URL = "AYNI_NODE_URL"
ENV_TIMEOUT_MS = "AYNI_FEDERATION_TIMEOUT_MS"
ENV_RETRY_MS = "AYNI_FEDERATION_RETRY_MS"


def load_node_key(keystore: str | Path, password: str) -> bytes:
    from ..chain.keys import (
        load_keystore,  # the one keystore implementation (scrypt V3)
    )
    return load_keystore(str(keystore), password)


def password_from_env() -> str | None:
    path = os.environ.get(ENV_PASSWORD_FILE)
    if path:
        return Path(path).read_text().rstrip("\n")
    return os.environ.get(ENV_PASSWORD)


def timings_from_env() -> dict:
    return {"timeout_ms": int(os.environ.get(ENV_TIMEOUT_MS, "60000")),
            "retry_ms": int(os.environ.get(ENV_RETRY_MS, "2000"))}


@dataclass
class Federation:
    node: object            # ledger.federation.node.FederationNode
    transport: Transport
    public_url: str

    def identity(self) -> dict:
        g = self.node.ledger.genesis
        return {"community": "0x" + g.domain.salt.hex(), "chainId": g.domain.chain_id,
                "node": self.node.address, "url": self.public_url}

    def _own_community(self) -> bytes:
        return self.node.community_id

    def peer_url_of_terms(self, terms: dict) -> str:
        a = Alliance.from_message(terms)
        return a.url_b if a.side_of(self._own_community()) == "A" else a.url_a

    @staticmethod
    def alliance_id_of_terms(terms: dict) -> str:
        return "0x" + Alliance.from_message(terms).alliance_id.hex()

    def peer_url_of_alliance(self, alliance_id: str) -> str:
        for a in self.node.alliances():
            if str(a.get("allianceId", "")).lower() == alliance_id.lower():
                return a["peerUrl"]
        raise E.UnknownAlliance(f"no alliance {alliance_id} here")


def open_federation(ledger, node_key: bytes, public_url: str, *, send: Send | None = None,
                    timeout_ms: int = 60_000, retry_ms: int = 2_000) -> Federation:
    from .node import FederationNode
    node = FederationNode(ledger, node_key, timeout_ms=timeout_ms, retry_ms=retry_ms)
    return Federation(node, Transport(node, send), public_url)


def federation_from_env(ledger) -> Federation | None:
    """The worker's Federation when `ayni serve` was given a node key, else None."""
    keystore = os.environ.get(ENV_KEYSTORE)
    if not keystore:
        return None
    password = password_from_env()
    if password is None:
        raise RuntimeError(f"{ENV_KEYSTORE} is set but neither {ENV_PASSWORD_FILE} nor {ENV_PASSWORD}")
    url = os.environ.get(ENV_PUBLIC_URL) or os.environ.get("AYNI_PUBLIC_URI", "http://127.0.0.1:8000")
    return open_federation(ledger, load_node_key(keystore, password), url, **timings_from_env())
