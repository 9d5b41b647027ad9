"""Nodes in one process (the demo): a `Send` that hands each message straight to the node
registered under the URL it is addressed to, as its HTTP endpoint would
(api/routers/federation.py). Same messages, same signatures, no sockets."""
from __future__ import annotations

from .driver import ACCEPTANCES_PATH, MESSAGES_PATH, PROPOSALS_PATH


class LocalNetwork:
    def __init__(self):
        self.nodes: dict[str, object] = {}

    def register(self, url: str, node) -> None:
        self.nodes[url.rstrip("/")] = node

    def send(self, base_url: str, path: str, body: dict) -> dict | None:
        node = self.nodes[base_url.rstrip("/")]
        if path == MESSAGES_PATH:
            return node.receive(body)
        if path == PROPOSALS_PATH:
            return node.receive_proposal(body)
        if path == ACCEPTANCES_PATH:
            return node.receive_acceptance(body)
        raise ValueError(f"no endpoint {path}")
