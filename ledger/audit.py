"""`Ledger.verify`: the server-side audit of invariants 1-4, from one read snapshot.

It streams the log page by page (constant memory in the log's length), and for each
page re-hashes the chain, replays every entry through the pure rules with every
signature re-checked, requires each stored body to be exactly the canonical body the
service would have written, and compares the projections of that page (transfers,
signed actions, memos) with what the entries imply. At the end it compares accounts,
balances and limits, the log head, and the zero sum. Every fault names where it is.
"""
from __future__ import annotations

import json

from sqlalchemy import func, select

from .core import errors as E
from .core.entries import ChainFault, Entry, canonical_body, verify_chain
from .core.hashing import ZERO32
from .core.state import Genesis, LedgerState, action_body, action_from_body, zero_sum_faults
from .core.typed_data import memo_hash
from .store import tables as T

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


def _expected_body_text(entry: Entry) -> str:
    if entry.kind == "community.created":
        return canonical_body(Genesis.from_body(entry.body).body())
    action, signer, signature = action_from_body(entry.kind, entry.body)
    digest = bytes.fromhex(entry.body["digest"][2:])
    return canonical_body(action_body(action, signer, signature, digest))


def audit(ledger, *, verify_signatures: bool = True):
    from .service import VerifyReport
    chain_faults: list = []
    replay_faults: list = []
    row_faults: list = []
    state = LedgerState()
    opened: dict[str, int] = {}
    count, prev_chain, expect_seq, last_entry = 0, ZERO32, 1, None
    replay_ok = True
    with _snapshot(ledger.engine) as conn, conn.begin():
        head = conn.execute(select(T.ledger_head.c.seq, T.ledger_head.c.chain_hash)).first()
        head_seq = head.seq if head else 0
        after = 0
        while after < head_seq:
            rows = conn.execute(select(T.entries).where(T.entries.c.seq > after, T.entries.c.seq <= head_seq)
                                .order_by(T.entries.c.seq).limit(PAGE)).all()
            if not rows:
                break
            lo, hi = rows[0].seq, rows[-1].seq
            transfers = {r.seq: r for r in conn.execute(select(T.transfers).where(T.transfers.c.seq.between(lo, hi)))}
            nonces = {r.seq: r for r in conn.execute(select(T.signed_actions).where(T.signed_actions.c.seq.between(lo, hi)))}
            memos = {r.seq: r for r in conn.execute(select(T.memos).where(T.memos.c.seq.between(lo, hi)))}
            entries = []
            for r in rows:
                try:
                    entries.append((Entry(r.seq, r.kind, r.at, json.loads(r.body), r.entry_hash, r.chain_hash), r.body))
                except ValueError as exc:
                    chain_faults.append(ChainFault(r.seq, f"body is not JSON ({exc})", "JSON", r.body[:60]))
                    replay_ok = False
            for fault in verify_chain([e for e, _ in entries], prev_chain_hash=prev_chain, expect_seq=expect_seq):
                chain_faults.append(fault)
            for e, text in entries:
                count += 1
                last_entry = e
                prev_chain, expect_seq = e.chain_hash, e.seq + 1
                if not replay_ok:
                    continue
                try:
                    if text != _expected_body_text(e):
                        raise E.IntegrityViolation("stored body is not the canonical body of its action")
                    state.apply(e, verify_signatures=verify_signatures)
                except Exception as exc:  # noqa: BLE001 - a corrupt entry of any shape is a fault, not a crash
                    code = getattr(exc, "code", type(exc).__name__)
                    replay_faults.append({"seq": e.seq, "code": code, "message": str(getattr(exc, "message", exc))})
                    replay_ok = False  # later entries depend on this one: replaying further would mislead
                    continue
                row_faults.extend(_page_rows(e, transfers, nonces, memos, opened))
            for table, leftover in (("transfers", transfers), ("signed_actions", nonces), ("memos", memos)):
                for seq in leftover if replay_ok else ():
                    row_faults.append({"seq": seq, "table": table, "problem": "row without a matching entry"})
            after = hi
        beyond = {t.name: conn.execute(select(func.count()).select_from(t).where(t.c.seq > head_seq)).scalar_one()
                  for t in (T.entries, T.transfers, T.signed_actions, T.memos)}
        stored = {(r.address, r.currency): r for r in conn.execute(select(T.balances))}
        accounts = {r.address: r for r in conn.execute(select(T.accounts))}
    for name, n in beyond.items():
        if n:
            chain_faults.append({"seq": head_seq, "problem": f"{n} {name} rows after the ledger head"})
    if last_entry is None and head_seq or last_entry and (last_entry.seq, last_entry.chain_hash) != (head.seq, head.chain_hash):
        chain_faults.append({"seq": head_seq, "problem": "ledger head does not match the last entry"})
    balance_faults = []
    if replay_ok:
        for key in sorted(set(stored) | set(state.positions)):
            want, got = state.positions.get(key), stored.get(key)
            found = got and (got.balance, got.credit_limit, got.ceiling)
            if want is None or found != (want.balance, want.credit_limit, want.ceiling):
                balance_faults.append({"account": key[0], "currency": key[1],
                                       "expected": want and want.balance, "found": got and got.balance,
                                       "expected_limits": want and (want.credit_limit, want.ceiling),
                                       "found_limits": got and (got.credit_limit, got.ceiling)})
        for address in sorted(set(accounts) | set(state.accounts)):
            want, got = state.accounts.get(address), accounts.get(address)
            found = got and (got.role, got.status, got.opened_seq)
            expected = want and (want.role, want.status, opened.get(address, 1))
            if found != expected:
                balance_faults.append({"account": address, "problem": "account role/status/opened_seq",
                                       "expected": expected, "found": found})
    zs = zero_sum_faults({k: r.balance for k, r in stored.items()})
    return VerifyReport(count, chain_faults, replay_faults + row_faults, balance_faults, zs)


def _page_rows(e: Entry, transfers: dict, nonces: dict, memos: dict, opened: dict) -> list[dict]:
    """Faults in the projection rows of one replayed entry (and pops the rows it explains)."""
    faults = []
    if e.kind == "community.created":
        opened[e.body["treasurer"]] = e.seq
        return faults
    b = e.body
    signer = b["payer"] if e.kind == "transfer.posted" else b["by"]
    n = nonces.pop(e.seq, None)
    if n is None or (n.signer, n.nonce, bytes(n.digest)) != (signer, b["nonce"], bytes.fromhex(b["digest"][2:])):
        faults.append({"seq": e.seq, "table": "signed_actions", "problem": "replay-protection row missing or altered"})
    if e.kind == "account.opened":
        opened[b["account"]] = e.seq
    if e.kind != "transfer.posted":
        return faults
    t = transfers.pop(e.seq, None)
    request = None if b["requestId"] == "0x" + "00" * 32 else bytes.fromhex(b["requestId"][2:])
    expected = (b["payer"], b["payee"], b["currency"], b["amount"], request, e.at)
    if t is None or (t.payer, t.payee, t.currency, t.amount, t.request_id and bytes(t.request_id), t.at) != expected:
        faults.append({"seq": e.seq, "table": "transfers", "problem": "transfer row missing or altered"})
    m = memos.pop(e.seq, None)
    if m is not None and memo_hash(m.memo, bytes(m.salt)).hex() != b["memoHash"][2:]:
        faults.append({"seq": e.seq, "table": "memos", "problem": "memo text does not match the signed memoHash"})
    return faults
