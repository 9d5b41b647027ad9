"""Reconciliation between two allied nodes (`ayni-wallet reconcile-peer`, docs/federation.md).

Each node's log proves its own side of every remote payment; neither proves the other's. A
treasurer (or auditor) of one side hands in both logs and this module checks, with nothing
but the entries (pure: no I/O):

  log              each log verifies alone (ledger.core.reconcile: hashes, signatures, replay)
  alliance         both logs record the same alliance
  alliance_signer  each side's copy of the terms carries the other treasurer's signature, and
                   it recovers to a treasurer of the OTHER log (a node cannot check that itself)
  remote_leg       every committed leg has its committed twin on the other side, carrying the
                   same payer-signed transfer (so the same amount and delivered)
  split_decision   no payment committed on one side and aborted on the other
  peer_mirror      A's peer account for B = Σ amount of committed A→B − Σ delivered of committed
                   B→A, per currency of A, computed from B's log (and the same the other way):
                   the two peer accounts mirror each other, converted payment by payment
  pending          no leg left prepared longer than the timeout
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .codec import hex0x
from .errors import LedgerError
from .federation import alliance_signers
from .findings import Finding
from .reconcile import Reconciler, Report
from .records import AllianceRecorded
from .vocab import Kind, Role

CHECKS = ("log", "alliance", "alliance_signer", "remote_leg", "split_decision", "peer_mirror", "pending")


@dataclass
class NodeLog:
    """One node's log as fetched (GET /v1/log) or exported, and the balances it reported."""
    name: str  # how the report names this side ("own", "peer", or the node's URL)
    entries: list[Mapping]
    head_seq: int | None = None
    balances: list | None = None  # the node's balance sheet rows; None: not compared


@dataclass
class _Side:
    log: NodeLog
    report: Report
    state: object  # LedgerState
    ats: dict[int, int]
    recorded: list[AllianceRecorded]

    @property
    def community(self) -> bytes | None:
        g = self.state.genesis
        return g.domain.salt if g is not None else None


@dataclass
class PeerReport:
    logs: dict[str, Report] = field(default_factory=dict)
    discrepancies: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    payments_checked: int = 0
    in_flight: int = 0

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {c: 0 for c in CHECKS}
        for d in self.discrepancies:
            key = "log" if d.code not in CHECKS else d.code
            out[key] += 1
        return out

    def as_dict(self) -> dict:
        return {"ok": self.ok, "paymentsChecked": self.payments_checked, "inFlight": self.in_flight,
                "counts": self.counts(), "discrepancies": [d.as_dict() for d in self.discrepancies],
                "warnings": self.warnings,
                "logs": {name: {"ok": r.ok, "entries": r.entries, "headSeq": r.head_seq} for name, r in self.logs.items()}}


def _replay(log: NodeLog, *, now_ms: int, verify_signatures: bool) -> _Side:
    rec = Reconciler(verify_signatures=verify_signatures, now_ms=now_ms)
    ats: dict[int, int] = {}
    recorded: list[AllianceRecorded] = []
    for entry in log.entries:
        rec.feed(entry)
        if isinstance(entry, Mapping) and type(entry.get("seq")) is int and type(entry.get("at")) is int:
            ats[entry["seq"]] = entry["at"]
            if entry.get("kind") == Kind.ALLIANCE_RECORDED.value:
                try:
                    recorded.append(AllianceRecorded.from_body(entry["body"]))
                except (KeyError, TypeError, ValueError, LedgerError):
                    continue  # the replay above reports the malformed entry
    rec.finish_log()
    if log.balances is not None:
        rec.compare_balances(log.head_seq if log.head_seq is not None else rec.report.head_seq, log.balances)
    return _Side(log, rec.report, rec.state, ats, recorded)


def _is_treasurer(state, address: str) -> bool:
    acct = state.accounts.get(address)
    return acct is not None and acct.role == Role.TREASURER.value


def _check_alliances(me: _Side, other: _Side, out: list[Finding]) -> set[bytes]:
    """The ids of the alliances between the two communities, as recorded on `me`."""
    ids = set()
    for rec in me.recorded:
        a = rec.alliance
        other_side = "B" if rec.side == "A" else "A"
        if a.community(other_side) != other.community:
            continue
        ids.add(a.alliance_id)
        try:
            signer_a, signer_b = alliance_signers(a, rec.signature_a, rec.signature_b)
        except Exception as exc:  # noqa: BLE001 - any unrecoverable signature is the finding
            out.append(Finding("alliance_signer", None, "the other treasurer's signature on the terms",
                               f"unrecoverable ({exc})", detail=f"{me.log.name} log, alliance {hex0x(a.alliance_id)}"))
            continue
        theirs = signer_b if rec.side == "A" else signer_a
        if not _is_treasurer(other.state, theirs):
            out.append(Finding("alliance_signer", None, f"a treasurer of the {other.log.name} log",
                               theirs, account=theirs,
                               detail=f"{me.log.name} log, alliance {hex0x(a.alliance_id)}: the other side's "
                                      f"signature recovers to an account that is not a treasurer there"))
    return ids


def _leg_text(leg) -> str:
    t = leg.transfer
    return (f"{leg.state} {leg.side} leg: {t.payer} pays {t.amount} {t.currency}, {t.payee} gets "
            f"{t.delivered} {t.payee_currency} (nonce {t.nonce})")


def _check_legs(a: _Side, b: _Side, alliance_ids: set[bytes], *, now_ms: int, timeout_ms: int,
                report: PeerReport) -> None:
    out = report.discrepancies
    legs_a = {pid: leg for pid, leg in a.state.legs.items() if leg.alliance_id in alliance_ids}
    legs_b = {pid: leg for pid, leg in b.state.legs.items() if leg.alliance_id in alliance_ids}
    for pid in sorted(set(legs_a) | set(legs_b)):
        report.payments_checked += 1
        la, lb = legs_a.get(pid), legs_b.get(pid)
        where = f"payment {hex0x(pid)}"
        for side, leg in ((a, la), (b, lb)):
            if leg is not None and leg.state == "prepared":
                at = side.ats.get(leg.prepared_seq)
                if at is not None and now_ms - at > timeout_ms:
                    out.append(Finding("pending", leg.prepared_seq, f"decided within {timeout_ms} ms",
                                       f"prepared for {now_ms - at} ms", detail=f"{side.log.name} log, {where}"))
        if la is not None and lb is not None:
            if la.side == lb.side:
                out.append(Finding("remote_leg", lb.prepared_seq, f"the {'in' if la.side == 'out' else 'out'} leg "
                                   f"on the {b.log.name} log", f"another {lb.side} leg", detail=where))
            if la.transfer != lb.transfer:
                out.append(Finding("remote_leg", lb.prepared_seq, _leg_text(la), _leg_text(lb),
                                   detail=f"{where}: the two logs carry different transfers"))
            states = {la.state, lb.state}
            if states == {"committed", "aborted"}:
                out.append(Finding("split_decision", (la if la.state == "aborted" else lb).decided_seq,
                                   f"committed on both ({a.log.name}: {la.state})",
                                   f"{b.log.name}: {lb.state}", detail=f"{where}: committed on one side, aborted "
                                                                       f"on the other"))
            elif "prepared" in states:
                report.in_flight += 1
            continue
        present, missing, leg = (a, b, la) if la is not None else (b, a, lb)
        if leg.state == "committed":
            out.append(Finding("remote_leg", leg.decided_seq, f"a committed twin on the {missing.log.name} log",
                               "none", account=leg.transfer.payer, currency=leg.transfer.currency,
                               detail=f"{where}: {_leg_text(leg)} on the {present.log.name} log only"))
        elif leg.state == "prepared":
            report.in_flight += 1


def _mirror(me: _Side, other: _Side, alliance_ids: set[bytes], out: list[Finding]) -> None:
    """`me`'s peer account for `other`, replayed from me, against what other's log implies."""
    views = [v for aid, v in me.state.alliances.items() if aid in alliance_ids]
    if not views:
        return
    peer = views[0].peer_account
    expected: dict[str, int] = {}
    for leg in other.state.legs.values():
        if leg.alliance_id not in alliance_ids or leg.state != "committed":
            continue
        t = leg.transfer
        if leg.side == "in":  # me → other: me's peer account received `amount` in me's currency
            expected[t.currency] = expected.get(t.currency, 0) + t.amount
        else:  # other → me: me's peer account paid out `delivered` in me's currency
            expected[t.payee_currency] = expected.get(t.payee_currency, 0) - t.delivered
    found = {cur: pos.balance for (addr, cur), pos in me.state.positions.items() if addr == peer}
    for cur in sorted(set(expected) | set(found)):
        if expected.get(cur, 0) != found.get(cur, 0):
            out.append(Finding("peer_mirror", None, f"{expected.get(cur, 0)} (committed payments in the "
                               f"{other.log.name} log)", f"{found.get(cur, 0)} (replayed from the {me.log.name} log)",
                               account=peer, currency=cur,
                               detail=f"the {me.log.name} log's peer account for the other community"))


def reconcile_peers(own: NodeLog, peer: NodeLog, *, now_ms: int, timeout_ms: int,
                    verify_signatures: bool = True) -> PeerReport:
    report = PeerReport()
    sides = [_replay(log, now_ms=now_ms, verify_signatures=verify_signatures) for log in (own, peer)]
    for s in sides:
        report.logs[s.log.name] = s.report
        for d in s.report.discrepancies:  # each log alone: its own findings, named by side
            report.discrepancies.append(replace(d, detail=f"{s.log.name} log: {d.detail or d.code}"))
    a, b = sides
    if a.community is None or b.community is None or a.community == b.community:
        report.discrepancies.append(Finding("alliance", None, "two logs of two different communities",
                                            "the same community twice" if a.community == b.community and a.community
                                            else "a log without its genesis"))
        return report
    ids_a = _check_alliances(a, b, report.discrepancies)
    ids_b = _check_alliances(b, a, report.discrepancies)
    if ids_a != ids_b or not ids_a:
        report.discrepancies.append(Finding("alliance", None, "the same alliance on both logs",
                                            f"{a.log.name}: {sorted(hex0x(i) for i in ids_a) or 'none'}; "
                                            f"{b.log.name}: {sorted(hex0x(i) for i in ids_b) or 'none'}"))
    ids = ids_a | ids_b
    _check_legs(a, b, ids, now_ms=now_ms, timeout_ms=timeout_ms, report=report)
    if report.in_flight:
        report.warnings.append(f"{report.in_flight} payment(s) in flight: the peer accounts are compared once "
                               f"they are decided")
    else:
        _mirror(a, b, ids, report.discrepancies)
        _mirror(b, a, ids, report.discrepancies)
    return report
