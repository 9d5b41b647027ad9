"""Retention and erasure of personal data kept beside the log.

What goes, and why nothing breaks:
- transfer memos older than the policy's period: the row holding memo *and* salt is deleted.
  The log only ever held keccak256(salt ‖ memo), so every entry hash, the hash chain, every
  Merkle root and receipt, and every signature still verify; without the salt the hash
  reveals nothing (not even for a short, guessable memo).
- payment-request memos older than the period (the request itself stays);
- profiles of closed accounts; expired sign-in challenges and grants; access-log rows older
  than their period.
A member may ask for their own memos (as payer or payee) and profile to be erased at once.
Nothing here writes to the entry log.

A deleted row is not yet gone from the disk: every erasure records, in its own transaction,
which tables it erased from (reclaim.mark_erased); then the reclaimer (reclaim.py)
checkpoints and truncates SQLite's write-ahead log (connections run with secure_delete, so
freed bytes are zeroed) or rewrites (VACUUM FULL) the PostgreSQL tables erased from, never
waiting on a reader, and retries in the background until it can: the report says whether
the bytes are gone or pending, and so does every worker asked later (the state is in the
database). Backups and archived WAL keep erased data until they rotate out
(docs/privacy.md)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from sqlalchemy import delete, or_, select, update

from ..exchange import erase_expired as erase_expired_listings
from ..exchange import erase_member as erase_board_member
from ..store import tables as T
from ..store.auth_tables import auth_challenges
from ..store.exchange_tables import EXCHANGE_TABLES
from ..store.federation_tables import remote_legs, remote_memos
from ..store.privacy_tables import privacy_access_log, privacy_grants
from ..store.request_tables import payment_requests as R
from ..store.shop_tables import shop_name_consents, shop_profiles, shop_requests
from .access import Access
from .grants import Preferences
from .policy import Policy, load_policy
from .reclaim import GONE, mark_erased, reclaimer

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Erased:
    memos: int = 0
    request_memos: int = 0
    profiles: int = 0
    grants: int = 0
    access_log: int = 0
    sign_in_challenges: int = 0
    exchange_listings: int = 0  # listings erased with their conversations and arrangements (ledger/exchange.py)
    exchange_conversations: int = 0  # board conversations erased with their messages and arrangements
    warnings: tuple[str, ...] = field(default=(), compare=False)  # e.g. the VACUUM could not run
    bytes_on_disk: str = field(default=GONE, compare=False)  # "gone" | "pending" (reclaim.py)

    def as_dict(self) -> dict:
        """The counts (warnings are reported apart)."""
        return {k: v for k, v in asdict(self).items() if k not in ("warnings", "bytes_on_disk")}


ERASED_FROM = (T.memos, R, T.profiles, remote_memos, privacy_grants, privacy_access_log,
               shop_profiles, shop_name_consents, shop_requests) + EXCHANGE_TABLES


def reclaim(ledger) -> tuple[str, tuple[str, ...]]:
    """After an erasure committed (recorded by mark_erased in its transaction): remove the
    deleted rows' bytes from the database files now if no reader needs them, else later in the
    background (reclaim.py); never waits on a reader, never raises.
    Returns ("gone" | "pending", warnings)."""
    return reclaimer(ledger, ERASED_FROM).request()


def on_disk(ledger, member: str | None = None) -> str:
    """"gone" once everything anyone erased (`member`'s erasures included) is off the disk,
    else "pending": read from the database, so every worker and the CLI say the same."""
    return reclaimer(ledger, ERASED_FROM).status()


def _touched(counts: dict) -> list[str]:
    return [table.name for table, n in counts.items() if n]


def run(ledger, policy: Policy | None = None, *, now_ms: int | None = None) -> Erased:
    """Apply the policy's retention to everything beside the log."""
    policy = policy or load_policy()
    now = ledger.clock() if now_ms is None else now_ms
    memo_cut = now - policy.retention_days("transfer_memo") * DAY_MS
    request_cut = now - policy.retention_days("request_memo") * DAY_MS
    log_cut = now - policy.retention_days("access_log") * DAY_MS
    with ledger.transaction() as conn:
        memos = conn.execute(delete(T.memos).where(T.memos.c.seq.in_(
            select(T.transfers.c.seq).where(T.transfers.c.at < memo_cut)))).rowcount
        # remote payments' memos: the same period, from when the leg was prepared
        memos += conn.execute(delete(remote_memos).where(remote_memos.c.payment_id.in_(
            select(remote_legs.c.payment_id).join(T.entries, T.entries.c.seq == remote_legs.c.prepared_seq)
            .where(T.entries.c.at < memo_cut)))).rowcount
        request_memos = conn.execute(update(R).where(R.c.created_at < request_cut, R.c.memo.isnot(None))
                                     .values(memo=None)).rowcount
        profiles = conn.execute(delete(T.profiles).where(T.profiles.c.address.in_(
            select(T.accounts.c.address).where(T.accounts.c.status == "closed")))).rowcount
        challenges = conn.execute(delete(auth_challenges)
                                  .where(auth_challenges.c.expires_at <= now // 1000)).rowcount
        # shops (docs/shops.md): name consents after their period, shop profiles of closed accounts
        consents = conn.execute(delete(shop_name_consents).where(
            shop_name_consents.c.at < now - policy.retention_days("shop_name_consents") * DAY_MS)).rowcount
        shop_profs = conn.execute(delete(shop_profiles).where(shop_profiles.c.address.in_(
            select(T.accounts.c.address).where(T.accounts.c.status == "closed")))).rowcount
        # tracked like every other erasure, so "bytes on disk" waits for these rows too
        mark_erased(conn, _touched({T.memos: memos, remote_memos: memos, R: request_memos,
                                    T.profiles: profiles, shop_name_consents: consents, shop_profiles: shop_profs}))
    prefs = Preferences(ledger, policy)
    grants = prefs.delete_expired(now)
    log_rows = Access(ledger, policy, prefs).delete_older_than(log_cut)
    listings = erase_expired_listings(ledger, policy, now)
    if grants or log_rows or listings:  # their own transactions, just committed: marked right after
        touched = _touched({privacy_grants: grants, privacy_access_log: log_rows})
        touched += [t.name for t in EXCHANGE_TABLES] if listings else []
        with ledger.transaction() as conn:
            mark_erased(conn, touched)
    state, warnings = reclaim(ledger)
    return Erased(memos, request_memos, profiles, grants, log_rows, challenges, listings,
                  warnings=warnings, bytes_on_disk=state)


def erase_member(ledger, address: str, *, memos: bool = True, profile: bool = True, board: bool = False) -> Erased:
    """A member's own erasure request: the memos of every transfer and payment request they
    are party to (the memo is both parties' data; either may have it erased) and their profile."""
    n_memos = n_requests = n_profiles = n_shop = n_consents = n_tills = 0
    with ledger.transaction() as conn:
        if memos:
            t = T.transfers
            theirs = select(t.c.seq).where(or_(t.c.payer == address, t.c.payee == address))
            n_memos = conn.execute(delete(T.memos).where(T.memos.c.seq.in_(theirs))).rowcount
            remote = select(remote_legs.c.payment_id).where(or_(remote_legs.c.payer == address,
                                                                 remote_legs.c.payee == address))
            n_memos += conn.execute(delete(remote_memos).where(remote_memos.c.payment_id.in_(remote))).rowcount
            n_requests = conn.execute(update(R).where(or_(R.c.payer == address, R.c.payee == address),
                                                      R.c.memo.isnot(None)).values(memo=None)).rowcount
        if profile:
            n_profiles = conn.execute(delete(T.profiles).where(T.profiles.c.address == address)).rowcount
            # a shop's published profile and a customer's name consents go with it (docs/shops.md)
            n_shop = conn.execute(delete(shop_profiles).where(shop_profiles.c.address == address)).rowcount
            n_profiles += n_shop
            n_consents = conn.execute(delete(shop_name_consents).where(shop_name_consents.c.member == address)).rowcount
            # a till label is free text the shop wrote (it may name a person despite the advice)
            n_tills = conn.execute(update(shop_requests).where(shop_requests.c.shop == address,
                                                               shop_requests.c.till.isnot(None))
                                   .values(till=None)).rowcount
        # in the same transaction: no worker can call this erasure gone before it is reclaimed
        mark_erased(conn, _touched({T.memos: n_memos, remote_memos: n_memos, R: n_requests,
                                    T.profiles: n_profiles, shop_profiles: n_shop, shop_name_consents: n_consents,
                                    shop_requests: n_tills}))
    n_listings, n_conversations = erase_board_member(ledger, address) if board else (0, 0)
    if n_listings or n_conversations:  # its own transaction, just committed: marked right after
        with ledger.transaction() as conn:
            mark_erased(conn, [t.name for t in EXCHANGE_TABLES])
    state, warnings = reclaim(ledger)
    return Erased(memos=n_memos, request_memos=n_requests, profiles=n_profiles, exchange_listings=n_listings,
                  exchange_conversations=n_conversations, warnings=warnings, bytes_on_disk=state)


def watch(ledger, *, every_s: float, stop: threading.Event, policy: Policy | None = None,
          on_report: Callable[[Erased], None] = lambda r: None,
          on_error: Callable[[str], None] = lambda m: None) -> None:
    """Run retention every `every_s` seconds until `stop` is set (a daemon thread of
    `ayni serve --retention-every`). A failed run is reported and retried next time."""
    while not stop.is_set():
        try:
            report = run(ledger, policy)
            on_report(report)
            for warning in report.warnings:
                on_error(warning)
        except Exception as exc:  # noqa: BLE001 - the server must outlive a failed run
            on_error(f"{type(exc).__name__}: {exc}")
        stop.wait(every_s)
