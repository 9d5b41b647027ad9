"""The federation's durable side: read the part of the ledger state a federation step needs
under the head lock, and append a federation entry through the fold (ledger.core.fold: the
same rule replay and `ayni verify` run) together with the projection rows it implies, in the
caller's unit of work. Caches what the log never changes (alliance terms, prepared transfers).
"""
from __future__ import annotations

from ..core import errors as E
from ..core.entries import Entry, canonical_body
from ..core.federation import Alliance, AllianceView
from ..core.federation_rules import Leg
from ..core.fold import LedgerState
from ..core.records import AllianceRecorded, RemotePrepared
from ..store.federation_repo import FederationRows
from ..unit_of_work import PostingBatch

# refusals that are not the payment's fault: the database, not a vote
NOT_A_VOTE = (E.StoreConflict, E.StoreUnavailable, E.InsecureStorage, E.IntegrityViolation)


class Refusal(Exception):
    """The fold's rule refused an entry the caller may turn into a REFUSED vote (not an error).
    Raised only around the rule, so a database failure can never be mistaken for a vote."""

    def __init__(self, error: E.LedgerError):
        super().__init__(str(error))
        self.error = error


class FederationStore:
    def __init__(self, genesis_of):
        self._genesis_of = genesis_of  # () -> Genesis (the ledger's, read once)
        self.terms: dict[bytes, Alliance] = {}  # immutable once recorded: a cache of the log
        self.prepared: dict[bytes, RemotePrepared] = {}  # the prepared entries' records, cached

    def views(self, uow) -> dict[bytes, AllianceView]:
        rows = uow.alliance_rows()
        missing = [r.recorded_seq for r in rows if bytes(r.alliance_id) not in self.terms]
        for body in uow.entry_bodies(missing).values():
            a = AllianceRecorded.from_body(body).alliance
            self.terms[a.alliance_id] = a
        return {bytes(r.alliance_id): AllianceView(self.terms[bytes(r.alliance_id)], r.own_side, r.status)
                for r in rows}

    def leg_records(self, uow, rows) -> dict[bytes, Leg]:
        missing = [r.prepared_seq for r in rows if bytes(r.payment_id) not in self.prepared]
        for body in uow.entry_bodies(missing).values():
            rec = RemotePrepared.from_body(body)
            self.prepared[rec.payment_id] = rec
        legs = {}
        for r in rows:
            pid = bytes(r.payment_id)
            legs[pid] = Leg(pid, r.side, bytes(r.alliance_id), self.prepared[pid].transfer, r.state, r.deadline,
                            r.code, r.prepared_seq, r.decided_seq)
        return legs

    def state(self, uow, *, addresses=(), payment_ids=None, undecided=False, nonces=()):
        """The part of the ledger state a federation step needs, read under the head lock."""
        seq, chain = uow.lock_head()
        st = LedgerState(genesis=self._genesis_of(), seq=seq)
        st.alliances.update(self.views(uow))
        rows = list(uow.leg_rows(payment_ids)) if payment_ids else []
        if undecided:
            rows += uow.leg_rows(undecided=True)
        st.legs.update(self.leg_records(uow, rows))
        addrs = set(addresses) | {v.peer_account for v in st.alliances.values()}
        for leg in st.legs.values():
            addrs.update((leg.transfer.payer, leg.transfer.payee))
        st.accounts.update(uow.accounts(addrs))
        st.positions.update(uow.positions(addrs))
        st.used_nonces.update({k: d for k, (d, _) in uow.nonces(nonces).items()})
        return st, chain

    def append(self, uow, st: LedgerState, chain: bytes, record, at: int, rows: FederationRows | None = None, *,
                refusable: bool = False) -> bytes:
        before_pos, before_legs = dict(st.positions), dict(st.legs)
        before_alliances, before_accounts = dict(st.alliances), set(st.accounts)
        seq = st.seq + 1
        try:
            st.apply_federation(seq, at, record)  # LedgerError here: nothing changed, nothing written
        except E.LedgerError as exc:
            if refusable and not isinstance(exc, NOT_A_VOTE):
                raise Refusal(exc) from exc
            raise
        body = record.body()
        text = canonical_body(body)
        entry = Entry.from_body_text(seq, record.KIND.value, at, body, text, chain)
        batch = PostingBatch(head=(seq, entry.chain_hash))
        batch.entries.append((seq, entry.kind, at, text, entry.entry_hash, entry.chain_hash))
        rows = rows or FederationRows()
        for address in set(st.accounts) - before_accounts:
            batch.new_accounts.append((address, st.accounts[address].role, st.accounts[address].status, seq))
        for key, p in st.positions.items():
            if key[0] not in before_accounts:
                batch.new_positions.append((key[0], key[1], p.balance, p.credit_limit, p.ceiling))
                if p.held_out or p.held_in:
                    rows.positions.append((p.balance, p.credit_limit, p.ceiling, p.held_out, p.held_in, *key))
            elif before_pos.get(key) != p:
                rows.positions.append((p.balance, p.credit_limit, p.ceiling, p.held_out, p.held_in, *key))
        if record.nonce_row is not None:
            signer, nonce, digest = record.nonce_row
            batch.nonces.append((signer, str(nonce), digest, seq))
        for aid, view in st.alliances.items():
            old = before_alliances.get(aid)
            if old is None:
                a = view.alliance
                rows.new_alliances.append(dict(
                    alliance_id=aid, peer_community=a.community(view.peer_side), own_side=view.own_side,
                    peer_node=a.node(view.peer_side), peer_url=a.url_a if view.peer_side == "A" else a.url_b,
                    peer_account=view.peer_account, status=view.status, recorded_seq=seq, status_seq=None))
            elif old.status != view.status:
                rows.alliance_status.append((aid, view.status, seq))
        for pid, leg in st.legs.items():
            old = before_legs.get(pid)
            if old is None:
                t = leg.transfer
                rows.new_legs.append(dict(
                    payment_id=pid, side=leg.side, alliance_id=leg.alliance_id, state=leg.state, payer=t.payer,
                    payee=t.payee, currency=t.currency, amount=t.amount, payee_currency=t.payee_currency,
                    delivered=t.delivered, deadline=leg.deadline, code=leg.code, memo_hash=t.memo_hash,
                    prepared_seq=seq, decided_seq=None))
                self.prepared[pid] = record
            elif old.state != leg.state:
                rows.decided_legs.append((pid, leg.state, leg.code, seq))
        uow.write(batch)
        uow.write_federation(rows)
        return entry.chain_hash
