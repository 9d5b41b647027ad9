"""The federation part of the SQL unit of work (ledger.store.unit_of_work.SqlUnitOfWork mixes
it in): reads of the alliances and remote-leg projections and the entries they point to, and
the writes of one federation posting, all in the unit of work's transaction (so under the
head lock when the caller took it)."""
from __future__ import annotations

import json
from collections import namedtuple
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update

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


# Every federation step reads these under the head lock: plain SQL on the driver's cursor, as
# the posting hot path does (ledger.store.posting_sql), since SQLAlchemy's per-statement cost
# was most of a step's time.
AllianceRow = namedtuple("AllianceRow", [c.name for c in AL.columns])
LegRow = namedtuple("LegRow", [c.name for c in RL.columns])
_ALLIANCE_COLUMNS = ", ".join(AllianceRow._fields)
_LEG_COLUMNS = ", ".join(LegRow._fields)


class FederationRepository:
    conn = None  # set by the unit of work
    sql = None

    def _mark(self) -> str:
        return "%s" if self.sql.pg else "?"

    def alliance_rows(self) -> list:
        self.cur.execute(f"SELECT {_ALLIANCE_COLUMNS} FROM alliances ORDER BY recorded_seq")
        return [AllianceRow(*r) for r in self.cur.fetchall()]

    def leg_rows(self, payment_ids=None, *, undecided: bool = False) -> list:
        where, params = [], []
        if payment_ids is not None:
            ids = sorted(set(payment_ids))
            if not ids:
                return []
            where.append(f"payment_id IN ({', '.join([self._mark()] * len(ids))})")
            params += ids
        if undecided:
            where.append("state = 'prepared'")
        self.cur.execute(f"SELECT {_LEG_COLUMNS} FROM remote_legs"
                         + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY prepared_seq", params)
        return [LegRow(*r) for r in self.cur.fetchall()]

    def entry_bodies(self, seqs) -> dict[int, dict]:
        seqs = sorted(set(seqs))
        if not seqs:
            return {}
        self.cur.execute(f"SELECT seq, body FROM entries WHERE seq IN ({', '.join([self._mark()] * len(seqs))})",
                         seqs)
        return {seq: json.loads(body) for seq, body in self.cur.fetchall()}

    def remote_memo(self, payment_id: bytes):
        return self.conn.execute(select(RM).where(RM.c.payment_id == payment_id)).first()

    def proposal(self, alliance_id: bytes):
        return self.conn.execute(select(FP).where(FP.c.alliance_id == alliance_id)).first()

    def proposals(self) -> list:
        return self.conn.execute(select(FP).order_by(FP.c.received_at)).all()

    def put_proposal(self, alliance_id: bytes, terms: dict, side: str, signature: str, at: int) -> None:
        """A new pending proposal; never replaces one (the caller checked none is pending)."""
        self.conn.execute(insert(FP).values(alliance_id=alliance_id, terms=json.dumps(terms, sort_keys=True),
                                            proposer_side=side, proposer_signature=signature, received_at=at))

    def write_federation(self, r: FederationRows) -> None:
        if r.positions:
            self.cur.executemany(self.sql.update_position, r.positions)
        if r.new_alliances:
            self.conn.execute(insert(AL), r.new_alliances)
        for alliance_id, status, seq in r.alliance_status:
            self.conn.execute(update(AL).where(AL.c.alliance_id == alliance_id).values(status=status, status_seq=seq))
        m = self._mark()
        if r.new_legs:
            marks = ", ".join([m] * len(LegRow._fields))
            self.cur.executemany(f"INSERT INTO remote_legs ({_LEG_COLUMNS}) VALUES ({marks})",
                                 [tuple(leg[c] for c in LegRow._fields) for leg in r.new_legs])
        if r.decided_legs:
            self.cur.executemany(f"UPDATE remote_legs SET state = {m}, code = {m}, decided_seq = {m} "
                                 f"WHERE payment_id = {m}",
                                 [(state, code, seq, pid) for pid, state, code, seq in r.decided_legs])
        if r.memos:
            self.conn.execute(insert(RM), [dict(payment_id=p, salt=s, memo=m) for p, s, m in r.memos])
        for alliance_id in r.drop_proposals:
            self.conn.execute(delete(FP).where(FP.c.alliance_id == alliance_id))
