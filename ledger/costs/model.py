"""Pure arithmetic of the cost report: monthly cost of each mode under each price scenario,
from the measured gas and off-chain figures and a workload. No I/O, no measurement here.

Modes:
  hosting     Ayni off-chain only: a VM (enough of them for the measured CPU) + managed PostgreSQL.
  anchored    hosting + one anchor transaction per interval (only when new entries exist).
  mc-direct   every transfer on chain in MutualCredit.sol, sent and paid by the payer; each new
              member is opened by the cooperative and must first be sent ETH for gas.
  mc-relayed  the same, but members sign off chain (EIP-712) and the cooperative's relayer pays.
  erc20       a plain ERC-20 token: transfers among holders; each new member receives a first
              distribution (new holder) and ETH for gas.
On-chain modes carry no hosting cost here, although a real deployment still needs a web front
end and an RPC provider or indexer: the comparison favours them (docs/costs.md).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .prices import Prices, Scenario

HOURS_PER_MONTH = 365 * 24 / 12  # 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
NONCE_WORD_BITS = 256  # MutualCredit's nonce bitmap: one new storage word per 256 nonces of a payer
MODES = ("hosting", "anchored", "mc-direct", "mc-relayed", "erc20")
MODE_LABELS = {
    "hosting": "Ayni off-chain, no anchoring (hosting only)",
    "anchored": "Ayni off-chain + anchoring",
    "mc-direct": "MutualCredit.sol, members pay gas",
    "mc-relayed": "MutualCredit.sol, relayed EIP-712",
    "erc20": "ERC-20 token",
}


@dataclass(frozen=True)
class Workload:
    name: str
    members: int
    transfers_per_member: float  # per member per month
    anchor_every_hours: float
    growth: float  # new members per month, as a fraction of members
    description: str = ""

    def __post_init__(self):
        if isinstance(self.members, bool) or not isinstance(self.members, int) or self.members < 1:
            raise ValueError(f"members must be a positive whole number, got {self.members!r}")
        for what, v in (("transfers per member", self.transfers_per_member), ("growth", self.growth)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{what} must be a non-negative number, got {v!r}")
        if not (isinstance(self.anchor_every_hours, (int, float)) and math.isfinite(self.anchor_every_hours)
                and self.anchor_every_hours > 0):
            raise ValueError(f"the anchor interval must be a positive number of hours, got {self.anchor_every_hours!r}")

    @property
    def transfers_per_month(self) -> float:
        return self.members * self.transfers_per_member

    @property
    def new_members_per_month(self) -> float:
        return self.members * self.growth

    @property
    def entries_per_month(self) -> float:
        return self.transfers_per_month + self.new_members_per_month  # transfer.posted + account.opened

    @property
    def anchors_per_month(self) -> float:
        # an anchor is sent only when at least one entry is waiting
        return min(HOURS_PER_MONTH / self.anchor_every_hours, self.entries_per_month)

    def to_json(self) -> dict:
        return {**asdict(self), "transfers_per_month": self.transfers_per_month,
                "new_members_per_month": self.new_members_per_month, "anchors_per_month": self.anchors_per_month}


PRESETS = {
    "care-coop": Workload("care-coop", 250, 8, 24, 0.01,
                          "a 250-member care cooperative: about two visits or errands paid per member per week"),
    "community-currency": Workload("community-currency", 3_000, 145_000 / 12 / 3_000, 6, 0.02,
                                   "a community currency network: ~3,000 monthly active members, "
                                   "~145,000 transfers a year"),
    "federation": Workload("federation", 100_000, 10, 1, 0.01,
                           "a federation of cooperatives with 100,000 members, 10 transfers each a month"),
}


@dataclass(frozen=True)
class Hosted:
    """What the off-chain service needs for a workload, from measured CPU per transfer."""
    vms: int
    transfers_per_vm_month: float  # the volume at which one VM stops being enough
    storage_gib_per_year: float


def hosting_needs(w: Workload, prices: Prices, cpu_s_per_transfer: float, db_bytes_per_transfer: float) -> Hosted:
    h = prices.hosting
    capacity = h.vm_vcpus * SECONDS_PER_MONTH * h.cpu_utilisation.value / cpu_s_per_transfer
    vms = max(1, math.ceil(w.transfers_per_month / capacity))
    return Hosted(vms, capacity, w.transfers_per_month * 12 * db_bytes_per_transfer / 2**30)


@dataclass(frozen=True)
class Cost:
    mode: str
    scenario: str
    monthly_usd: float
    transfers_usd: float   # gas for the month's transfers (or anchors)
    onboarding_usd: float  # opening new members' accounts / first tokens / their ETH for gas
    hosting_usd: float

    def to_json(self, transfers_per_month: float) -> dict:
        d = asdict(self)
        d["usd_per_transfer"] = self.monthly_usd / transfers_per_month if transfers_per_month else None
        return d


def relayed_gas(gas) -> float:
    """Mean gas of a relayed transfer: a payer's nonces fill one bitmap word per 256 transfers."""
    return gas.mc_transfer_sig_same_word + (gas.mc_transfer_sig_new_word - gas.mc_transfer_sig_same_word) / NONCE_WORD_BITS


def mode_cost(mode: str, w: Workload, s: Scenario, gas, hosted: Hosted, prices: Prices) -> Cost:
    t, n = w.transfers_per_month, w.new_members_per_month
    hosting = hosted.vms * prices.hosting.vm_usd.value + prices.hosting.pg_usd.value
    if mode == "hosting":
        parts = (0.0, 0.0, hosting)
    elif mode == "anchored":
        parts = (w.anchors_per_month * s.tx_usd(gas.anchor), 0.0, hosting)
    elif mode == "mc-direct":
        parts = (t * s.tx_usd(gas.mc_transfer_repeat),
                 n * (s.tx_usd(gas.mc_open_account) + s.tx_usd(gas.eth_funding)), 0.0)
    elif mode == "mc-relayed":
        parts = (t * s.tx_usd(relayed_gas(gas)), n * s.tx_usd(gas.mc_open_account), 0.0)
    elif mode == "erc20":
        parts = (t * s.tx_usd(gas.erc20_transfer_existing),
                 n * (s.tx_usd(gas.erc20_transfer_new_holder) + s.tx_usd(gas.eth_funding)), 0.0)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return Cost(mode, s.name, sum(parts), *parts)


def costs(w: Workload, prices: Prices, gas, cpu_s_per_transfer: float, db_bytes_per_transfer: float):
    """(Hosted, [Cost for every scenario x mode])."""
    hosted = hosting_needs(w, prices, cpu_s_per_transfer, db_bytes_per_transfer)
    return hosted, [mode_cost(m, w, s, gas, hosted, prices) for s in prices.scenarios for m in MODES]
