"""The federation part of the SQL unit of work (ledger.store.unit_of_work.SqlUnitOfWork mixes
it in): reads of the alliances and remote-leg projections and the entries they point to, and
the writes of one federation posting, all in the unit of work's transaction (so under the
head lock when the caller took it)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update

from . import tables as T
from .federation_tables import alliances as AL
from .federation_tables import federation_proposals as FP
from .federation_tables import remote_legs as RL
from .federation_tables import remote_memos as RM


@dataclass
class FederationRows:
    """What one federation posting writes besides the entry (after PostingBatch's rows)."""

    positions: list[tuple] = field(default_factory=list)  # (balance, limit, ceiling, held_out, held_in, address, currency)
    new_alliances: list[dict] = field(default_factory=list)
    alliance_status: list[tuple] = field(default_factory=list)  # (alliance_id, status, seq)
    new_legs: list[dict] = field(default_factory=list)
    decided_legs: list[tuple] = field(default_factory=list)  # (payment_id, state, code, seq)
    memos: list[tuple] = field(default_factory=list)  # (payment_id, salt, memo)
    drop_proposals: list[bytes] = field(default_factory=list)


class FederationRepository:
    conn = None  # set by the unit of work
    sql = None
    cur = None

    def alliance_rows(self) -> list:
        return self.conn.execute(select(AL).order_by(AL.c.recorded_seq)).all()

    def leg_rows(self, payment_ids=None, *, undecided: bool = False) -> list:
        q = select(RL)
        if payment_ids is not None:
            ids = sorted(set(payment_ids))
            if not ids:
                return []
            q = q.where(RL.c.payment_id.in_(ids))
        if undecided:
            q = q.where(RL.c.state == "prepared")
        return self.conn.execute(q.order_by(RL.c.prepared_seq)).all()

    def entry_bodies(self, seqs) -> dict[int, dict]:
        seqs = sorted(set(seqs))
        if not seqs:
            return {}
        rows = self.conn.execute(select(T.entries.c.seq, T.entries.c.body).where(T.entries.c.seq.in_(seqs))).all()
        return {r.seq: json.loads(r.body) for r in rows}

    def remote_memo(self, payment_id: bytes):
        return self.conn.execute(select(RM).where(RM.c.payment_id == payment_id)).first()

    def proposal(self, alliance_id: bytes):
        return self.conn.execute(select(FP).where(FP.c.alliance_id == alliance_id)).first()

    def proposals(self) -> list:
        return self.conn.execute(select(FP).order_by(FP.c.received_at)).all()

    def put_proposal(self, alliance_id: bytes, terms: dict, side: str, signature: str, at: int) -> None:
        self.conn.execute(delete(FP).where(FP.c.alliance_id == alliance_id))
        self.conn.execute(insert(FP).values(alliance_id=alliance_id, terms=json.dumps(terms, sort_keys=True),
                                            proposer_side=side, proposer_signature=signature, received_at=at))

    def write_federation(self, r: FederationRows) -> None:
        if r.positions:
            self.cur.executemany(self.sql.update_position, r.positions)
        if r.new_alliances:
            self.conn.execute(insert(AL), r.new_alliances)
        for alliance_id, status, seq in r.alliance_status:
            self.conn.execute(update(AL).where(AL.c.alliance_id == alliance_id).values(status=status, status_seq=seq))
        if r.new_legs:
            self.conn.execute(insert(RL), r.new_legs)
        for payment_id, state, code, seq in r.decided_legs:
            self.conn.execute(update(RL).where(RL.c.payment_id == payment_id)
                              .values(state=state, code=code, decided_seq=seq))
        if r.memos:
            self.conn.execute(insert(RM), [dict(payment_id=p, salt=s, memo=m) for p, s, m in r.memos])
        for alliance_id in r.drop_proposals:
            self.conn.execute(delete(FP).where(FP.c.alliance_id == alliance_id))
