"""Pure arithmetic of the cost report: monthly cost of each mode under each price scenario,
from the measured gas, transaction sizes and off-chain figures and a workload. No I/O here.

Modes:
  hosting     Ayni off-chain only: a VM (enough of them for the measured CPU) + managed PostgreSQL
              (+ storage beyond the plan's included disk).
  anchored    hosting + the anchor transactions Ayni's anchorer really sends (batches of at most
              ledger.anchoring.DEFAULT_MAX_BATCH entries, once per interval).
  small-sqlite    Ayni off-chain on ONE small VM (~2 vCPU, 4 GB, priced in EUR) with the embedded
              SQLite file: the cheapest honest host. Gives up managed backups and any failover, and
              cannot spread over more VMs (one file, one writer); over one VM's CPU it is flagged.
  small-postgres  the same VM with PostgreSQL self-hosted on it (more VMs when the CPU needs them):
              gives up the managed service's backups, point-in-time recovery and failover.
  mc-direct   every transfer on chain in MutualCredit.sol, sent and paid by the payer; each new
              member is opened by the cooperative and sent ETH for gas, every member is topped up
              with ETH once a month.
  mc-relayed  the same, but members sign off chain (EIP-712) and the cooperative's relayer (one VM)
              submits and pays. Ayni's nonces are random 128-bit numbers, so each relayed transfer
              opens a new nonce-bitmap word; sequential nonces are an explicit, labelled option.
  erc20       a plain ERC-20 token: transfers among holders; each new member receives a first
              distribution (new holder) and ETH for gas, and a monthly ETH top-up.
On-chain modes carry no front end and no RPC provider or indexer here (EXCLUDED): the comparison
favours them (docs/costs.md). Each states the hosting it still needs (NEEDS): at least a web front
end members use, which costs at least the small VM.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..anchoring import DEFAULT_MAX_BATCH
from .prices import Prices, Scenario

HOURS_PER_MONTH = 365 * 24 / 12  # 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
NONCE_WORD_BITS = 256  # MutualCredit's nonce bitmap: 256 nonces of a payer share one storage word
MC_CURRENCIES = 2      # currencies the measured MutualCredit deployment adds (HOUR, CRED)
MAX_MEMBERS = 10**9
MAX_TRANSFERS_PER_MEMBER = 1e6   # a month; more is a typo, not a cooperative
MAX_GROWTH = 1.0                 # new members a month as a fraction of members (doubling)
ANCHOR_INTERVAL_HOURS = (1 / 60, 24 * 366)  # a minute .. a year
NONCES = ("random", "sequential")
MODES = ("hosting", "anchored", "small-sqlite", "small-postgres", "mc-direct", "mc-relayed", "erc20")
SMALL_MODES = ("small-sqlite", "small-postgres")
MODE_LABELS = {
    "hosting": "Ayni off-chain, no anchoring (hosting only)",
    "anchored": "Ayni off-chain + anchoring",
    "small-sqlite": "Ayni off-chain on one small VM, embedded SQLite (no anchoring)",
    "small-postgres": "Ayni off-chain on one small VM, self-hosted PostgreSQL (no anchoring)",
    "mc-direct": "MutualCredit.sol, members pay gas (+ a monthly ETH top-up each)",
    "mc-relayed": "MutualCredit.sol, relayed EIP-712, random nonces (a new bitmap word each)",
    "erc20": "ERC-20 token (+ a monthly ETH top-up each)",
}
SEQUENTIAL_LABEL = ("MutualCredit.sol, relayed EIP-712, SEQUENTIAL nonces (amortised over 256; "
                    "not what Ayni signs)")
EXCLUDED = {
    "hosting": "", "anchored": "", "small-sqlite": "", "small-postgres": "",
    "mc-direct": "front end and RPC provider/indexer not priced",
    "mc-relayed": "front end and RPC provider/indexer not priced (the relayer's VM is)",
    "erc20": "front end and RPC provider/indexer not priced",
}


# What each line gives up against the managed line (docs/costs.md explains each).
GIVES_UP = {
    "hosting": "", "anchored": "",
    "small-sqlite": "no managed backups or failover: a nightly `ayni backup` copied off the VM is the admin's job; "
                    "one writer, cannot spread over VMs; a dead disk loses what was not yet backed up",
    "small-postgres": "no managed backups, point-in-time recovery or failover: pg_dump/WAL archiving and a standby "
                      "are the admin's job (docs/backup.md, docs/high-availability.md)",
    "mc-direct": "", "mc-relayed": "", "erc20": "",
}
ON_CHAIN = ("mc-direct", "mc-relayed", "erc20")


def needs(mode: str, small_vm_usd: float) -> str:
    """The hosting an on-chain mode still needs and is not charged for here."""
    if mode not in ON_CHAIN:
        return ""
    return (f"still needs hosting: a web front end members use (at least one small VM, ${small_vm_usd:,.2f}/month, "
            "not added) and an RPC provider or indexer to read balances and history")


def mode_labels(nonces: str = "random") -> dict[str, str]:
    return {**MODE_LABELS, "mc-relayed": SEQUENTIAL_LABEL} if nonces == "sequential" else dict(MODE_LABELS)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Workload:
    name: str
    members: int
    transfers_per_member: float  # per member per month
    anchor_every_hours: float
    growth: float  # new members per month, as a fraction of members
    description: str = ""

    def __post_init__(self):
        if isinstance(self.members, bool) or not isinstance(self.members, int) or not 1 <= self.members <= MAX_MEMBERS:
            raise ValueError(f"members must be a whole number from 1 to {MAX_MEMBERS:,}, got {self.members!r}")
        if not (_number(self.transfers_per_member) and 0 <= self.transfers_per_member <= MAX_TRANSFERS_PER_MEMBER):
            raise ValueError(f"transfers per member must be a number from 0 to {MAX_TRANSFERS_PER_MEMBER:,.0f} "
                             f"a month, got {self.transfers_per_member!r}")
        if not (_number(self.growth) and 0 <= self.growth <= MAX_GROWTH):
            raise ValueError(f"growth must be a fraction from 0 to {MAX_GROWTH:g} (new members a month / members), "
                             f"got {self.growth!r}")
        lo, hi = ANCHOR_INTERVAL_HOURS
        if not (_number(self.anchor_every_hours) and lo <= self.anchor_every_hours <= hi):
            raise ValueError(f"the anchor interval must be from one minute ({lo:.4f} h) to a year ({hi:g} h), "
                             f"got {self.anchor_every_hours!r}")

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
        """What Ayni's anchorer sends: each interval, ceil(waiting entries / max batch) transactions,
        none when nothing waits (so never more than the entries). Entries are taken as spread evenly
        over the month."""
        intervals = HOURS_PER_MONTH / self.anchor_every_hours
        per_interval = self.entries_per_month / intervals
        return min(intervals * math.ceil(per_interval / DEFAULT_MAX_BATCH), self.entries_per_month)

    def to_json(self) -> dict:
        return {**asdict(self), "transfers_per_month": self.transfers_per_month,
                "new_members_per_month": self.new_members_per_month, "anchors_per_month": self.anchors_per_month,
                "anchor_max_batch": DEFAULT_MAX_BATCH}


# Preset figures are assumptions of ours except community-currency's members and yearly volume.
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
    """What the off-chain service needs for a workload, from measured CPU and bytes per transfer."""
    vms: int
    transfers_per_vm_month: float  # the volume at which one VM stops being enough
    storage_gib_per_year: float
    storage_usd_per_month: float = 0.0  # first-year average of storage beyond the plan's included disk
    small_vms: int = 1                  # small VMs the CPU needs (self-hosted PostgreSQL can add more)
    transfers_per_small_vm_month: float = 0.0
    transfers_per_small_sqlite_month: float = 0.0  # one worker: one vCPU, however many the VM has
    small_disk_gib_needed: float = 0.0  # RETENTION_YEARS of data plus a local backup copy
    small_disk_gib_usable: float = 0.0  # SMALL_DISK_SHARE of the small VM's disk


# What the small-VM lines must fit. The cost model's own CPU figure is the ledger in-process;
# a member's transfer also costs HTTP, JSON and the signature check in the server, measured by
# benchmarks/footprint.py (docs/costs.md: 1.2-1.3 ms SQLite, 1.7-2.0 ms PostgreSQL per transfer
# with one worker): the small lines use the larger of the two, the upper end of those ranges.
HTTP_CPU_S_PER_TRANSFER = {"small-sqlite": 0.0013, "small-postgres": 0.0020}
# The disk holds the system, logs and the database, and a backup copy before it is shipped off
# the VM (docs/backup.md): a year of data plus that copy must fit in half of the disk.
RETENTION_YEARS = 1
LOCAL_BACKUP_COPIES = 1
SMALL_DISK_SHARE = 0.5


def storage_usd_per_month(gib_per_month: float, included_gib: float, usd_per_gib_month: float) -> float:
    """First-year average monthly charge for storage beyond `included_gib`, the database growing by
    `gib_per_month` from empty (a fresh ledger; an imported history would come on top)."""
    return sum(max(0.0, gib_per_month * m - included_gib) for m in range(1, 13)) / 12 * usd_per_gib_month


def hosting_needs(w: Workload, prices: Prices, cpu_s_per_transfer: float, db_bytes_per_transfer: float) -> Hosted:
    h = prices.hosting
    capacity = h.vm_vcpus * SECONDS_PER_MONTH * h.cpu_utilisation.value / cpu_s_per_transfer
    vms = max(1, math.ceil(w.transfers_per_month / capacity))
    gib_per_month = w.transfers_per_month * db_bytes_per_transfer / 2**30
    storage = storage_usd_per_month(gib_per_month, h.pg_storage_gib, h.pg_extra_storage_usd_per_gib_month.value)
    small_cpu = max(cpu_s_per_transfer, HTTP_CPU_S_PER_TRANSFER["small-postgres"])
    small_capacity = h.small_vm.vcpus * SECONDS_PER_MONTH * h.cpu_utilisation.value / small_cpu
    small_vms = max(1, math.ceil(w.transfers_per_month / small_capacity))
    sqlite_cpu = max(cpu_s_per_transfer, HTTP_CPU_S_PER_TRANSFER["small-sqlite"])
    sqlite_capacity = 1 * SECONDS_PER_MONTH * h.cpu_utilisation.value / sqlite_cpu  # `--workers 1`
    disk_needed = gib_per_month * 12 * RETENTION_YEARS * (1 + LOCAL_BACKUP_COPIES)
    return Hosted(vms, capacity, gib_per_month * 12, storage, small_vms, small_capacity, sqlite_capacity,
                  disk_needed, h.small_vm.disk_gib * SMALL_DISK_SHARE)


def small_disk_misfit(hosted: Hosted) -> str:
    if hosted.small_disk_gib_needed <= hosted.small_disk_gib_usable:
        return ""
    return (f"DOES NOT FIT: {RETENTION_YEARS} year of data plus a local backup copy is "
            f"{hosted.small_disk_gib_needed:,.1f} GiB, over the {hosted.small_disk_gib_usable:,.0f} GiB "
            f"({SMALL_DISK_SHARE:.0%}) of the small VM's disk it may use (a bigger disk or the hosting line); ")


@dataclass(frozen=True)
class Cost:
    mode: str
    scenario: str
    monthly_usd: float
    transfers_usd: float   # gas (and L2 data fees) for the month's transfers, or its anchors
    onboarding_usd: float  # opening new members' accounts / first tokens / their first ETH for gas
    topups_usd: float      # monthly ETH top-ups of members who pay their own gas
    hosting_usd: float     # VMs + managed PostgreSQL + extra storage; the relayer's VM
    one_time_usd: float    # migration: deploying contracts, opening every existing member
    excluded: str = ""
    gives_up: str = ""     # what a cheaper host gives up against the managed line
    needs: str = ""        # hosting an on-chain mode still needs, not priced

    def to_json(self, transfers_per_month: float) -> dict:
        d = asdict(self)
        d["usd_per_transfer"] = self.monthly_usd / transfers_per_month if transfers_per_month else None
        return d


def relayed_gas(gas, nonces: str = "random") -> float:
    """Gas of a relayed transfer. Ayni signs random 128-bit nonces, so each one lands in a fresh
    bitmap word (the measured new-word figure). With sequential nonces a payer's 256 payments share
    a word: the used-word cost plus 1/256 of the new-word extra."""
    if nonces == "random":
        return float(gas.mc_transfer_sig_new_word)
    if nonces == "sequential":
        return gas.mc_transfer_sig_same_word + (gas.mc_transfer_sig_new_word - gas.mc_transfer_sig_same_word) / NONCE_WORD_BITS
    raise ValueError(f"nonces must be one of {', '.join(NONCES)}, got {nonces!r}")


def mode_cost(mode: str, w: Workload, s: Scenario, gas, hosted: Hosted, prices: Prices, *,
              nonces: str = "random") -> Cost:
    t, n, members = w.transfers_per_month, w.new_members_per_month, w.members
    tx = lambda kind, used: s.tx_usd(used, gas.signed_bytes(kind))  # noqa: E731 - gas + L2 data fee
    h = prices.hosting
    hosting = hosted.vms * h.vm_usd.value + h.pg_usd.value + hosted.storage_usd_per_month
    funding = tx("eth_funding", gas.eth_funding)
    mc_open = tx("mc_open_account", gas.mc_open_account)
    mc_setup = tx("mc_deploy", gas.mc_deploy) + MC_CURRENCIES * tx("mc_add_currency", gas.mc_add_currency)
    gives_up = GIVES_UP.get(mode, "")
    if mode == "hosting":
        parts = (0.0, 0.0, 0.0, hosting)
        once = 0.0
    elif mode == "small-sqlite":
        # one VM whatever the load: an SQLite file has one writer on one machine
        parts = (0.0, 0.0, 0.0, h.small_vm_usd)
        once = 0.0
        gives_up = small_disk_misfit(hosted) + gives_up
        if hosted.transfers_per_small_sqlite_month and t > hosted.transfers_per_small_sqlite_month:
            gives_up = (f"DOES NOT FIT: the workload needs {t / hosted.transfers_per_small_sqlite_month:,.1f} "
                        f"times the CPU of one SQLite worker (one writer, one process; use small-postgres or "
                        f"hosting); " + gives_up)
    elif mode == "small-postgres":
        parts = (0.0, 0.0, 0.0, hosted.small_vms * h.small_vm_usd)
        once = 0.0
        gives_up = small_disk_misfit(hosted) + gives_up
    elif mode == "anchored":
        parts = (w.anchors_per_month * tx("anchor", gas.anchor), 0.0, 0.0, hosting)
        once = tx("anchor_deploy", gas.anchor_deploy)
    elif mode == "mc-direct":
        parts = (t * tx("mc_transfer", gas.mc_transfer_repeat), n * (mc_open + funding), members * funding, 0.0)
        once = mc_setup + members * (mc_open + funding)
    elif mode == "mc-relayed":
        parts = (t * tx("mc_transfer_sig", relayed_gas(gas, nonces)), n * mc_open, 0.0, h.vm_usd.value)
        once = mc_setup + members * mc_open
    elif mode == "erc20":
        holder = tx("erc20_transfer_new_holder", gas.erc20_transfer_new_holder)
        parts = (t * tx("erc20_transfer", gas.erc20_transfer_existing), n * (holder + funding), members * funding, 0.0)
        once = tx("erc20_deploy", gas.erc20_deploy) + members * (holder + funding)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return Cost(mode, s.name, sum(parts), *parts, once, EXCLUDED[mode], gives_up, needs(mode, h.small_vm_usd))


def costs(w: Workload, prices: Prices, gas, cpu_s_per_transfer: float, db_bytes_per_transfer: float, *,
          nonces: str = "random"):
    """(Hosted, [Cost for every scenario x mode])."""
    hosted = hosting_needs(w, prices, cpu_s_per_transfer, db_bytes_per_transfer)
    return hosted, [mode_cost(m, w, s, gas, hosted, prices, nonces=nonces) for s in prices.scenarios for m in MODES]
