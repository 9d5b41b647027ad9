"""The SQL that posting runs for refunds (under the head lock): what a refunded payment was and
how much of it was refunded so far.

`refund_links` (a projection of each refund's `refundOf`) and the transfers back from the payee
to the payer only FIND the earlier refunds of a payment, through their indexes; the amounts and
nonces counted are read from those refunds' own entries in the log, and an entry that does not
name that payment is ignored. So an altered, extra or deleted link row cannot make posting count
a wrong amount, and `ayni verify` (ledger/audit.py) compares every link with every refund entry
both ways, so drift is also a finding (the same trust posting gives the transfers rows)."""
from __future__ import annotations

from sqlalchemy import select

from ..core.refunds import Paid
from ..core.vocab import Kind
from . import tables as T
from .shop_tables import refund_links as RL
from .stored import entry_body


def load_refundables(conn, seqs) -> dict:
    seqs = sorted(set(seqs))
    out: dict = {}
    if not seqs:
        return out
    rows = conn.execute(select(T.entries.c.seq, T.entries.c.body).where(
        T.entries.c.seq.in_(seqs), T.entries.c.kind == Kind.TRANSFER_POSTED.value)).all()
    link_seqs = set(conn.execute(select(RL.c.seq).where(RL.c.original_seq.in_(seqs))).scalars().all())
    # and, not trusting the links alone: every transfer back from the payee to the payer after the
    # payment that names a request (a refund always does), from the audited transfers rows by the
    # (payer, seq) index; a shop pays its customers back rarely, so this is a short range
    t = T.transfers
    for r in rows:
        b = entry_body(r.seq, r.body)
        link_seqs.update(conn.execute(select(t.c.seq).where(
            t.c.payer == b["payee"], t.c.seq > r.seq, t.c.payee == b["payer"], t.c.currency == b["currency"],
            t.c.request_id.isnot(None))).scalars().all())
    # the earlier refunds themselves, from the log: what each returned and under which nonce
    done: dict[int, list[tuple[int, int]]] = {}
    if link_seqs:
        for x in conn.execute(select(T.entries.c.seq, T.entries.c.body).where(
                T.entries.c.seq.in_(sorted(set(link_seqs))), T.entries.c.kind == Kind.TRANSFER_POSTED.value)):
            body = entry_body(x.seq, x.body)
            link = body.get("refundOf")
            if isinstance(link, dict) and link.get("seq") in seqs:
                done.setdefault(link["seq"], []).append((body["amount"], int(link["refundNonce"])))
    for r in rows:
        b = entry_body(r.seq, r.body)
        paid = Paid(b["payer"], b["payee"], b["currency"], b["amount"], int(b["nonce"]), "refundOf" in b)
        mine = done.get(r.seq, [])
        out[r.seq] = (paid, bytes.fromhex(b["digest"][2:]), sum(a for a, _ in mine), {n for _, n in mine})
    return out


def refund_intent(conn, rid: bytes):
    """The refund prepared under this id (ledger.shops.Shops.prepare_refund), or None."""
    from .shop_tables import refund_intents as RI
    return conn.execute(select(RI).where(RI.c.id == rid)).first()
