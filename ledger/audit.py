"""`Ledger.verify`: the server-side audit of invariants 1-4, from one read snapshot.

It streams the log page by page (constant memory in the log's length), and for each
page re-hashes the chain, runs every entry through the one fold (ledger.core.fold: the
record, its canonical body, digest, signature, nonce and the kind's rule, exactly as
posting ran them), requires each stored body text to be the canonical text, and compares
the projections of that page (transfers, signed actions, memos, refund links) with what each entry's
record implies. At the end it compares accounts, balances and limits, the log head, and
the zero sum. Every fault is a Finding (ledger.core.findings) naming where it is.
"""
from __future__ import annotations

import json

from sqlalchemy import func, select

from .core.entries import Entry, canonical_body, verify_chain
from .core.findings import Finding
from .core.fold import LedgerState, step, zero_sum_faults
from .core.nonces import NonceSet
from .core.hashing import ZERO32
from .core.records import FederationRecord, Signed, TransferPosted
from .core.refunds import RefundTransfer
from .core.typed_data import memo_hash
from .store import tables as T
from .store.federation_tables import alliances as AL, remote_legs as RL, remote_memos as RM
from .store.shop_tables import refund_links as RFL

PAGE = 2000


def _snapshot(engine):
    """One consistent read view: a deferred transaction on SQLite (WAL snapshot at the first
    read), REPEATABLE READ READ ONLY on PostgreSQL."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    else:
        conn = conn.execution_options(ayni_readonly=True)
    return conn


def audit(ledger, *, verify_signatures: bool = True, jobs: int | None = 1, parallel_threshold: int | None = None,
          page: int = PAGE, recovery=None):
    """`jobs`: cores recovering signatures (ledger/verify/parallel.py): pages are read ahead of
    the fold while their signatures are recovered in worker processes (from `parallel_threshold`
    entries on); the fold still meets every entry in order and makes the same findings.
    `recovery`: a ledger.verify.parallel.Recovery to use instead (its counters are the caller's)."""
    from .service import VerifyReport
    from .verify.parallel import Recovery, signature_job
    chain_faults: list[Finding] = []
    replay_faults: list[Finding] = []
    row_faults: list[Finding] = []
    # replay protection for the whole log, compactly: the unique index guards posting itself
    state = LedgerState(used_nonces=NonceSet())
    opened: dict[str, int] = {}
    count, prev_chain, expect_seq, last_entry = 0, ZERO32, 1, None
    replay_ok = True
    if recovery is None and verify_signatures:
        recovery = Recovery(jobs, **({"threshold": parallel_threshold} if parallel_threshold is not None else {}))
    signatures = recovery.check if recovery is not None else None
    with _snapshot(ledger.engine) as conn, conn.begin():
        head = conn.execute(select(T.ledger_head.c.seq, T.ledger_head.c.chain_hash)).first()
        head_seq = head.seq if head else 0

        def pages():
            after = 0
            while after < head_seq:
                rows = conn.execute(select(T.entries).where(T.entries.c.seq > after, T.entries.c.seq <= head_seq)
                                    .order_by(T.entries.c.seq).limit(page)).all()
                if not rows:
                    return
                lo, hi = rows[0].seq, rows[-1].seq
                transfers = {r.seq: r for r in conn.execute(select(T.transfers).where(T.transfers.c.seq.between(lo, hi)))}
                nonces = {r.seq: r for r in conn.execute(select(T.signed_actions).where(T.signed_actions.c.seq.between(lo, hi)))}
                memos = {r.seq: r for r in conn.execute(select(T.memos).where(T.memos.c.seq.between(lo, hi)))}
                # refund links: posting reads them to cap refunds, so they are audited like transfers
                links = {r.seq: r for r in conn.execute(select(RFL).where(RFL.c.seq.between(lo, hi)))}
                entries, bad = [], []
                for r in rows:
                    try:
                        entries.append((Entry(r.seq, r.kind, r.at, json.loads(r.body), r.entry_hash, r.chain_hash), r.body))
                    except ValueError as exc:
                        bad.append(Finding("entry_hash", r.seq, "JSON", r.body[:60], detail=f"body is not JSON ({exc})"))
                yield entries, bad, transfers, nonces, memos, links
                after = hi

        def jobs_of(page):
            if not replay_ok:  # the replay stopped at its first fault: no later signature is checked
                return []
            return [j for j in (signature_job(e.seq, e.body) for e, _ in page[0]) if j is not None]
        stream = pages()
        if recovery is not None:
            recovery.expect(head_seq)
            stream = recovery.chunks(stream, jobs_of)
        try:
            for entries, bad, transfers, nonces, memos, links in stream:
                if bad:
                    chain_faults += bad
                    replay_ok = False
                chain_faults += verify_chain([e for e, _ in entries], prev_chain_hash=prev_chain, expect_seq=expect_seq)
                for e, text in entries:
                    count += 1
                    last_entry = e
                    prev_chain, expect_seq = e.chain_hash, e.seq + 1
                    if not replay_ok:
                        continue
                    if e.seq != state.seq + 1:
                        result = Finding("sequence", e.seq, f"seq {state.seq + 1}", f"seq {e.seq}")
                    elif text != canonical_body(e.body, validate=False):
                        result = Finding("rules", e.seq, "the canonical body text", text[:60],
                                         detail="stored body is not the canonical body of its action")
                    else:
                        result = step(state, e.seq, e.kind, e.at, e.body, signatures)
                    if isinstance(result, Finding):
                        replay_faults.append(result)
                        replay_ok = False  # later entries depend on this one: replaying further would mislead
                        continue
                    row_faults.extend(_page_rows(e, result, transfers, nonces, memos, opened, links))
                for table, leftover in (("transfers", transfers), ("signed_actions", nonces), ("memos", memos),
                                        ("refund_links", links)):
                    for seq in leftover if replay_ok else ():
                        row_faults.append(Finding("projection", seq, "no row", "a row", table=table,
                                                  detail="row without a matching entry"))
        finally:
            if recovery is not None:
                recovery.close()
        beyond = {t.name: conn.execute(select(func.count()).select_from(t).where(t.c.seq > head_seq)).scalar_one()
                  for t in (T.entries, T.transfers, T.signed_actions, T.memos, RFL)}
        stored = {(r.address, r.currency): r for r in conn.execute(select(T.balances))}
        accounts = {r.address: r for r in conn.execute(select(T.accounts))}
        alliance_rows = {bytes(r.alliance_id): r for r in conn.execute(select(AL))}
        leg_rows = {bytes(r.payment_id): r for r in conn.execute(select(RL))}
        remote_memos = conn.execute(select(RM)).all()
    for name, n in beyond.items():
        if n:
            chain_faults.append(Finding("head", head_seq, f"no {name} rows after the ledger head", f"{n} rows",
                                        table=name, detail=f"{n} {name} rows after the ledger head"))
    if last_entry is None and head_seq or last_entry and (last_entry.seq, last_entry.chain_hash) != (head.seq, head.chain_hash):
        chain_faults.append(Finding("head", head_seq, "the last entry's seq and chain hash", "another head",
                                    detail="ledger head does not match the last entry"))
    balance_faults = []
    if replay_ok:
        for key in sorted(set(stored) | set(state.positions)):
            want, got = state.positions.get(key), stored.get(key)
            found = got and (got.balance, got.credit_limit, got.ceiling, got.held_out, got.held_in)
            expected = want and (want.balance, want.credit_limit, want.ceiling, want.held_out, want.held_in)
            if want is None or found != expected:
                balance_faults.append(Finding(
                    "balance", head_seq, str(expected), str(found),
                    account=key[0], currency=key[1], table="balances",
                    detail="stored (balance, credit limit, ceiling, held out, held in) differs from the replay",
                    values=(("expected", want and want.balance), ("found", got and got.balance),
                            ("expected_limits", want and (want.credit_limit, want.ceiling)),
                            ("found_limits", got and (got.credit_limit, got.ceiling)),
                            ("expected_holds", want and (want.held_out, want.held_in)),
                            ("found_holds", got and (got.held_out, got.held_in)))))
        for address in sorted(set(accounts) | set(state.accounts)):
            want, got = state.accounts.get(address), accounts.get(address)
            found = got and (got.role, got.status, got.opened_seq)
            expected = want and (want.role, want.status, opened.get(address, 1))
            if found != expected:
                balance_faults.append(Finding("account", head_seq, str(expected), str(found), account=address,
                                              table="accounts", detail="account role/status/opened_seq",
                                              values=(("expected", expected), ("found", found))))
        balance_faults += _federation_rows(state, head_seq, alliance_rows, leg_rows, remote_memos)
    zs = zero_sum_faults({k: r.balance for k, r in stored.items()})
    return VerifyReport(count, chain_faults, replay_faults + row_faults, balance_faults, zs)


def _page_rows(e: Entry, record, transfers: dict, nonces: dict, memos: dict, opened: dict,
               links: dict | None = None) -> list[Finding]:
    """Faults in the projection rows one replayed entry's record implies (pops the rows it explains)."""
    faults = []
    if record.opens is not None:
        opened.setdefault(record.opens, e.seq)  # first opening: a later alliance reuses its peer account
    if isinstance(record, FederationRecord):
        want = record.nonce_row
        n = nonces.pop(e.seq, None)
        if want is not None and (n is None or (n.signer, n.nonce, bytes(n.digest)) != (want[0], str(want[1]), want[2])):
            faults.append(Finding("projection", e.seq, "the row its entry implies", "a missing or altered row",
                                  table="signed_actions", detail="replay-protection row missing or altered"))
        elif want is None and n is not None:
            faults.append(Finding("projection", e.seq, "no row", "a row", table="signed_actions",
                                  detail="row without a matching entry"))
        return faults
    if not isinstance(record, Signed):
        return faults

    def fault(table: str, problem: str) -> None:
        faults.append(Finding("projection", e.seq, "the row its entry implies", "a missing or altered row",
                              table=table, detail=problem))

    n = nonces.pop(e.seq, None)
    if n is None or (n.signer, n.nonce, bytes(n.digest)) != (record.signer, str(record.action.nonce), record.digest):
        fault("signed_actions", "replay-protection row missing or altered")
    if not isinstance(record, TransferPosted):
        return faults
    a = record.action
    t = transfers.pop(e.seq, None)
    expected = (a.payer, a.payee, a.currency, a.amount, record.request_id, e.at)
    if t is None or (t.payer, t.payee, t.currency, t.amount, t.request_id and bytes(t.request_id), t.at) != expected:
        fault("transfers", "transfer row missing or altered")
    m = memos.pop(e.seq, None)
    if m is not None and memo_hash(m.memo, bytes(m.salt)) != a.memo_hash:
        fault("memos", "memo text does not match the signed memoHash")
    if links is not None:
        link = links.pop(e.seq, None)
        want = (a.refund_of, str(a.refund_nonce), a.amount) if isinstance(a, RefundTransfer) else None
        found = link and (link.original_seq, link.refund_nonce, link.amount)
        if want != found:
            fault("refund_links", "refund link missing, altered, or on an entry that is not a refund")
    return faults


def _federation_rows(state, head_seq: int, alliance_rows: dict, leg_rows: dict, memos: list) -> list[Finding]:
    """The alliances and remote_legs projections against the replay, and each remote memo
    against the memoHash its payer signed."""
    faults = []
    for aid in sorted(set(alliance_rows) | set(state.alliances)):
        view, row = state.alliances.get(aid), alliance_rows.get(aid)
        expected = view and (view.alliance.community(view.peer_side), view.own_side, view.alliance.node(view.peer_side),
                             view.alliance.url_a if view.peer_side == "A" else view.alliance.url_b,
                             view.peer_account, view.status)
        found = row and (bytes(row.peer_community), row.own_side, row.peer_node, row.peer_url, row.peer_account,
                         row.status)
        if expected != found:
            faults.append(Finding("projection", head_seq, str(expected), str(found), table="alliances",
                                  detail=f"alliance 0x{aid.hex()} differs from the log"))
    for pid in sorted(set(leg_rows) | set(state.legs)):
        leg, row = state.legs.get(pid), leg_rows.get(pid)
        t = leg and leg.transfer
        expected = leg and (leg.side, leg.alliance_id, leg.state, t.payer, t.payee, t.currency, t.amount,
                            t.payee_currency, t.delivered, leg.deadline, leg.code, t.memo_hash, leg.prepared_seq,
                            leg.decided_seq)
        found = row and (row.side, bytes(row.alliance_id), row.state, row.payer, row.payee, row.currency, row.amount,
                         row.payee_currency, row.delivered, row.deadline, row.code, bytes(row.memo_hash),
                         row.prepared_seq, row.decided_seq)
        if expected != found:
            faults.append(Finding("projection", head_seq, str(expected), str(found), table="remote_legs",
                                  detail=f"remote leg 0x{pid.hex()} differs from the log"))
    for m in memos:
        leg = state.legs.get(bytes(m.payment_id))
        if leg is None or memo_hash(m.memo, bytes(m.salt)) != leg.transfer.memo_hash:
            faults.append(Finding("projection", head_seq, "a memo matching its payment's memoHash", "another memo",
                                  table="remote_memos", detail=f"remote memo of 0x{bytes(m.payment_id).hex()}"))
    return faults
