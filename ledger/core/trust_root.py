"""The trust root: what a member, treasurer or auditor knows independently of the server, and
holds every answer of the server and of the chain against. Pure (no I/O); one place for every
pin that `ayni-wallet verify` and `ayni-wallet reconcile` check.

Why: a receipt or a reconciliation proves something only against facts the checker did not
learn from the party being checked. A server (or anyone) can deploy its own Anchor contract
and anchor whatever it likes there, or serve a history rewritten from a new genesis; the
checker's pins (from wallet.toml, the environment, flags, or the first reconciliation) are what
makes that visible:

  contract        the community's Anchor contract (receipts and anchors must be in it)
  anchor_chain_id the chain that contract lives on (default: chain_id)
  chain_id        the chain id of the community's EIP-712 signing domain
  community_salt  the salt of that domain (with chain_id: the domain itself)
  genesis_hash    the entry hash of the log's first entry, pinned at the first reconciliation
  own_key         the checker's own key, which must hold its role (own_role: treasurer or
                  auditor) in the history: a history where it does not is not the one joined
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from .codec import hex0x
from .findings import Finding
from .typed_data import Domain
from .vocab import Role, Status


CHECK = "trust_root"  # the code of every finding here (reconciliation reports count it under this name)


def _differs(seq: int | None, expected: str, found: str, detail: str, account: str | None = None) -> Finding:
    """One thing that differs from the trust root: where (seq or None), what was expected, what
    was found, and why that matters. The same Finding every other check reports."""
    return Finding(CHECK, seq, expected, found, account=account, detail=detail)


def _same_address(a: str | None, b: str | None) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.lower() == b.lower()


@dataclass(frozen=True)
class TrustRoot:
    contract: str | None = None
    anchor_chain_id: int | None = None
    chain_id: int | None = None
    community_salt: str | None = None
    genesis_hash: str | None = None
    own_key: str | None = None
    own_role: str = Role.TREASURER

    # -- where pins come from ----------------------------------------------------------
    @classmethod
    def from_pins_file(cls, pins: Mapping) -> "TrustRoot":
        """The pins file a first reconciliation wrote (see `pins_file`)."""
        return cls(contract=pins.get("contract"), anchor_chain_id=pins.get("chain"), chain_id=pins.get("chainId"),
                   community_salt=pins.get("communitySalt"), genesis_hash=pins.get("genesisHash"))

    def pins_file(self) -> dict:
        return {"genesisHash": self.genesis_hash, "communitySalt": self.community_salt, "chainId": self.chain_id,
                "contract": self.contract, "chain": self.anchor_chain_id}

    def overridden_by(self, other: "TrustRoot") -> "TrustRoot":
        """These pins with every pin `other` sets taken from `other` (configuration over file)."""
        return replace(self, **{k: v for k, v in vars(other).items() if v is not None and k != "own_role"},
                       own_role=other.own_role)

    @property
    def anchor_chain(self) -> int | None:
        return self.anchor_chain_id if self.anchor_chain_id is not None else self.chain_id

    def domain(self) -> Domain | None:
        """The community's EIP-712 domain when both its chain id and salt are pinned."""
        if self.chain_id is None or self.community_salt is None:
            return None
        return Domain(chain_id=self.chain_id, salt=bytes.fromhex(self.community_salt.removeprefix("0x")))

    def pins_anything(self) -> bool:
        return any(v is not None for k, v in vars(self).items() if k != "own_role")

    # -- checks ------------------------------------------------------------------------
    def check_anchor_target(self, contract: object, chain_id: object, *, what: str) -> list[Finding]:
        """`what` (a receipt, the server's anchor records, a chain node) names `contract` on
        `chain_id`: both must be the pinned ones, when pinned."""
        out = []
        if self.contract is not None and not _same_address(contract, self.contract):
            out.append(_differs(None, self.contract, str(contract),
                                f"{what} names anchor contract {contract}, not the pinned {self.contract}"))
        if self.anchor_chain is not None and chain_id != self.anchor_chain:
            out.append(_differs(None, f"chain {self.anchor_chain}", f"chain {chain_id}",
                                f"{what} is on chain {chain_id}, not the pinned chain {self.anchor_chain}"))
        return out

    def check_history(self, genesis_hash: str | None, domain: Domain | None,
                      accounts: Mapping | None = None) -> list[Finding]:
        """The replayed history: its genesis entry, its signing domain, and the checker's own
        role in it (`accounts`: address -> object with .role and .status)."""
        out = []
        if self.genesis_hash is not None and genesis_hash != self.genesis_hash:
            out.append(_differs(1, self.genesis_hash, str(genesis_hash),
                                "the genesis entry differs from the one pinned at an earlier reconciliation"))
        if domain is None:
            return out
        salt = hex0x(domain.salt)
        if self.community_salt is not None and salt != self.community_salt.lower():
            out.append(_differs(1, self.community_salt, salt, "another community (salt)"))
        if self.chain_id is not None and domain.chain_id != self.chain_id:
            out.append(_differs(1, str(self.chain_id), str(domain.chain_id), "another chain id in the signing domain"))
        if self.own_key is not None:
            acct = (accounts or {}).get(self.own_key)
            if acct is None or acct.role != self.own_role or acct.status != Status.ACTIVE:
                out.append(_differs(None, f"{self.own_key} an active {self.own_role}", "not in this log's replay",
                                    f"your own key holds no {self.own_role} rights in this history", self.own_key))
        return out
