"""The bank workload (tests/bank.py) in CI: a real `ayni serve` (PostgreSQL with 2 workers,
SQLite with 1) SIGKILLed and restarted 3 times under 16 clients; then the checker.
The long run is benchmarks/bank.py."""
import copy

import pytest

from ledger.service import Ledger

from .bank import Attempt, BankConfig, check, run

SECONDS = 12.0


@pytest.mark.slow
def test_bank_survives_sigkill_and_restart(db_url, tmp_path):
    workers = 2 if db_url.startswith("postgresql") else 1
    hist = run(db_url, tmp_path, BankConfig(seconds=SECONDS, kills=3, workers=workers))
    ledger = Ledger.open(db_url, migrate=False)
    try:
        _check_run(hist, ledger)
    finally:
        ledger.engine.dispose()


def _check_run(hist, ledger):
    faults, counts = check(hist, ledger)
    print(counts)
    assert not faults, "\n".join(faults[:20])
    assert counts["kills"] == 3
    assert counts["unresolved"] == 0  # the server came back: every transfer got a definite answer
    assert counts["acknowledged"] > 100 and counts["reads"] > 20
    assert sum(counts["refused"].values()) > 0  # the limits were tight enough to bite
    assert counts["no_answer_attempts"] > 0  # the kills hit clients, who retried
    assert counts["deliberate_reposts"] > 0
    assert not any(s.startswith("5") for s in counts["attempt_statuses"]), counts["attempt_statuses"]
    checker_catches_what_it_claims_to(hist, ledger)


def checker_catches_what_it_claims_to(hist, ledger):
    """The checker is only worth something if it fails on a bad history: tamper with copies
    of this run's history (one run serves both, to keep CI short)."""
    acked = [d for d, r in hist.transfers.items() if r.final is not None and r.final.status == 201]
    refused = [d for d, r in hist.transfers.items() if r.final is not None and r.final.status == 422]

    def faults_after(mutate) -> list[str]:
        h = copy.deepcopy(hist)
        mutate(h)
        return check(h, ledger)[0]

    def forged_ack(h):  # a refused transfer that a client had been told was posted
        h.transfers[refused[0]].attempts.append(Attempt(201, {"seq": 10**6, "duplicate": False}))
    assert any("in the log at []" in f for f in faults_after(forged_ack))

    def lost(h):  # a transfer in the log that no client sent
        del h.transfers[acked[0]]
    assert any("no client sent it" in f for f in faults_after(lost))

    def skewed_read(h):
        h.reads[0].rows[0]["balance"] += 1
    found = faults_after(skewed_read)
    assert any("sum to zero" in f for f in found) and any("replayed" in f for f in found)

    def beyond_limit(h):
        row = h.reads[-1].rows[1]
        row["creditLimit"] = -row["balance"] - 1 if row["balance"] < 0 else row["creditLimit"]
        row["ceiling"] = row["balance"] - 1 if row["balance"] > 0 else row["ceiling"]
        if row["balance"] == 0:
            row["balance"], h.reads[-1].rows[2]["balance"] = 10**9, h.reads[-1].rows[2]["balance"] - 10**9
    assert any("outside its limits" in f for f in faults_after(beyond_limit))

    def stale_read(h):
        c = h.reads[-1].client
        h.sessions[c].append(("ack", 10**6))
        h.sessions[c].append(("read", 1))
    assert any("read headSeq 1 after" in f for f in faults_after(stale_read))

    def wrong_duplicate(h):  # a retry answered with another seq than the original
        rec = h.transfers[acked[1]]
        rec.reposts.append(Attempt(200, {"seq": rec.final.body["seq"] + 1, "duplicate": True}))
    assert any("different seqs" in f for f in faults_after(wrong_duplicate))
