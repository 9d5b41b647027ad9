"""Point-in-time recovery on PostgreSQL, as docs/backup.md tells an operator to do it: WAL
archiving on, a base backup, a named restore point after a chosen seq, then base backup +
archived WAL restored into a new cluster with recovery_target_name. The restored ledger's head
must be exactly the chosen seq, and `ayni verify` must pass on it.

The test makes its own clusters (tests/pg_cluster.py): archiving needs server settings the
shared test server does not have. It skips, loudly, only outside CI when the PostgreSQL server
binaries are missing; in CI (CI=true) that is a failure."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ledger.sample import round_robin_transfers
from ledger.service import Ledger

from . import pg_cluster
from .conftest import IN_CI, Community

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.postgres


@pytest.fixture
def clusters():
    problem = pg_cluster.bindir_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL server binaries are unusable: {problem}")
        warnings.warn(f"SKIPPING the PITR test: {problem}")
        pytest.skip(f"!!! PITR test skipped: {problem} (required when CI=true)")
    made: list[pg_cluster.Cluster] = []
    extra: list[Path] = []
    yield made, extra
    for c in made:
        c.remove()
    for p in extra:
        shutil.rmtree(p, ignore_errors=True)


def test_restore_base_backup_plus_archived_wal_to_a_named_seq(clusters):
    made, extra = clusters
    archive = pg_cluster.scratch("ayni-wal-")
    extra.append(archive)
    # archive_command: never overwrite a segment already archived (the PostgreSQL docs' rule)
    primary = pg_cluster.Cluster.create({
        "wal_level": "replica", "archive_mode": "on",
        "archive_command": f"'test ! -f {archive}/%f && cp %p {archive}/%f'"})
    made.append(primary)
    primary.start()
    primary.sql("CREATE DATABASE ayni")
    c = Community(primary.url("ayni"))
    keys = c.accounts(5, credit_limit=10**9)
    c.ledger.submit_many(round_robin_transfers(c.domain, keys, 15, memo_every=3))

    base = pg_cluster.scratch("ayni-base-")
    extra.append(base)
    pg_cluster.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                   "-D", str(base / "data"), "--checkpoint=fast", "--wal-method=none", "--no-sync")

    c.ledger.submit_many(round_robin_transfers(c.domain, keys, 15, offset=3))
    chosen_seq, chosen_hash = c.ledger.head()
    primary.sql(f"SELECT pg_create_restore_point('ayni-seq-{chosen_seq}')")
    c.ledger.submit_many(round_robin_transfers(c.domain, keys, 15, offset=7))  # after the point: must not come back
    assert c.ledger.head()[0] > chosen_seq
    # close the WAL segment holding the restore point and wait until it is archived
    segment = primary.sql("SELECT pg_walfile_name(pg_switch_wal())")
    primary.wait_until(f"SELECT last_archived_wal >= '{segment}' FROM pg_stat_archiver")
    c.dispose()
    primary.stop("immediate")  # the primary is gone: only the base backup and the archive are left

    restored_root = pg_cluster.scratch("ayni-restored-")
    extra.append(restored_root)
    shutil.copytree(base / "data", restored_root / "data", symlinks=True, dirs_exist_ok=True)
    (restored_root / "data" / "recovery.signal").touch()
    restored = pg_cluster.Cluster.from_data(restored_root / "data", {
        "archive_mode": "off", "restore_command": f"'cp {archive}/%f %p'",
        "recovery_target_name": f"'ayni-seq-{chosen_seq}'", "recovery_target_action": "'promote'"})
    made.append(restored)
    restored.start()
    restored.wait_until("SELECT NOT pg_is_in_recovery()", db="ayni")
    assert f"recovery stopping at restore point \"ayni-seq-{chosen_seq}\"" in restored.log.read_text()

    ledger = Ledger.open(restored.url("ayni"), migrate=False)
    try:
        assert ledger.head() == (chosen_seq, chosen_hash)
    finally:
        ledger.close()
    r = subprocess.run([sys.executable, "-c", "from ledger.cli import main; main()", "verify", "--db",
                        restored.url("ayni")], capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{chosen_seq} entries; chain faults 0" in r.stdout
