"""The SQL that posting runs for refunds (under the head lock): what a refunded payment was and
how much of it was refunded so far, from the entry log itself and the refund_links projection."""
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
    links = conn.execute(select(RL.c.original_seq, RL.c.refund_nonce, RL.c.amount, RL.c.seq)
                         .where(RL.c.original_seq.in_(seqs) | RL.c.seq.in_(seqs))).all()
    is_refund = {r.seq for r in links}
    for r in rows:
        b = entry_body(r.seq, r.body)
        paid = Paid(b["payer"], b["payee"], b["currency"], b["amount"], int(b["nonce"]),
                    "refundOf" in b or r.seq in is_refund)
        mine = [x for x in links if x.original_seq == r.seq]
        out[r.seq] = (paid, bytes.fromhex(b["digest"][2:]), sum(x.amount for x in mine),
                      {int(x.refund_nonce) for x in mine})
    return out


def refund_intent(conn, rid: bytes):
    """The refund prepared under this id (ledger.shops.Shops.prepare_refund), or None."""
    from .shop_tables import refund_intents as RI
    return conn.execute(select(RI).where(RI.c.id == rid)).first()
