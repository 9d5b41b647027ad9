"""Issue 23, item 1: reclaiming an erasure's bytes never makes a payment wait for a reader.

With a reader holding a transaction open (a real second connection: sqlite3 `BEGIN; SELECT`,
or a PostgreSQL REPEATABLE READ snapshot), the erasure answers at once with
`bytesOnDisk: "pending"`, the erased bytes honestly still on disk; transfers post while the
reader is still held; once it ends, the background retry removes the bytes and
`GET .../erasure` says "gone". The speed itself is measured in benchmarks/erasure.py."""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from ledger.privacy import reclaim, retention
from ledger.store.db import BUSY_TIMEOUT_MS

from .test_api import Api

MARKER = "DIAGNOSIS-confidential-" + "z" * 40
KEPT = "kept-" + "q" * 40
# Not a speed bound: the old reclaim held the write lock waiting on the reader for the whole busy
# timeout, so a posting that has not finished within half of it is stuck behind that wait.
STUCK_S = BUSY_TIMEOUT_MS / 1000 / 2


class HeldReader:
    """A second connection that began a read transaction before the erasure and keeps it."""

    def __init__(self, url: str):
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            self.conn = sqlite3.connect(make_url(url).database, isolation_level=None)
            self.conn.execute("BEGIN")
            self.conn.execute("SELECT count(*) FROM memos").fetchone()
        else:
            self.engine = create_engine(url)
            self.conn = self.engine.connect().execution_options(isolation_level="REPEATABLE READ")
            self.conn.exec_driver_sql("SELECT count(*) FROM memos").scalar_one()

    @property
    def held(self) -> bool:
        return self.conn.in_transaction if self.sqlite else self.conn.in_transaction()

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()
        if not self.sqlite:
            self.engine.dispose()


def bytes_on_disk(url: str, ledger) -> bytes:
    """Everything the database keeps on disk for the memos: the SQLite file, WAL and SHM, or
    PostgreSQL's raw page of the memos table (dead row versions included)."""
    if url.startswith("sqlite"):
        path = Path(make_url(url).database)
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    with ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pageinspect")
        return bytes(conn.exec_driver_sql("SELECT get_raw_page('memos', 0)").scalar_one())


def in_thread(fn):
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_erasure_with_a_held_reader_is_pending_and_never_stalls_transfers(db_url, tmp_path):
    api = Api(db_url, tmp_path)
    c = api.c
    for n in ("ana", "bea", "cho"):
        c.member(n)
    c.ledger.submit(c.pay("ana", "bea", 10, memo=MARKER))
    c.ledger.submit(c.pay("bea", "cho", 10, memo=KEPT))
    url = f"/v1/accounts/{c.addr('ana')}/erasure"
    headers = api.h("ana")
    reader = HeldReader(db_url)
    try:
        # the erasure and a burst of transfers, at the same time, while the reader holds on
        erasure, result = in_thread(lambda: api.client.post(url, headers=headers, json={}))
        posted = [c.ledger.submit(c.pay("bea", "cho", 1 + i)).seq for i in range(5)]
        erasure.join(STUCK_S)
        assert not erasure.is_alive(), "the erasure waited on the reader"
        r = result["value"]
        assert r.status_code == 200, r.text
        assert r.json()["erased"]["memos"] == 1 and r.json()["bytesOnDisk"] == "pending"
        assert "warnings" not in r.json()  # a reader is no failure: just not yet
        # ...and a transfer posted after the erasure, while the reclaim is pending
        late, out = in_thread(lambda: c.ledger.submit(c.pay("cho", "ana", 2)).seq)
        late.join(STUCK_S)
        assert not late.is_alive() and "error" not in out, out
        assert reader.held and len(posted) == 5
        # pending is the truth: the erased memo is still in the files, and a retry cannot help yet
        assert MARKER.encode() in bytes_on_disk(db_url, c.ledger)
        assert not reclaim.reclaimer(c.ledger, retention.ERASED_FROM).try_now().gone
        assert api.client.get(url, headers=headers).json() == {"bytesOnDisk": "pending"}
    finally:
        reader.release()
    try:
        deadline = time.monotonic() + 60  # the background retry, not this test, must do it
        while api.client.get(url, headers=headers).json()["bytesOnDisk"] != "gone" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.client.get(url, headers=headers).json() == {"bytesOnDisk": "gone"}
        on_disk = bytes_on_disk(db_url, c.ledger)
        assert MARKER.encode() not in on_disk and KEPT.encode() in on_disk
        assert c.ledger.verify().ok
        # someone who never asked for erasure is told the same once the process has reclaimed
        assert api.client.get(f"/v1/accounts/{c.addr('cho')}/erasure", headers=api.h("cho")).json() == \
            {"bytesOnDisk": "gone"}
        assert api.client.get(url, headers=api.h("bea")).status_code == 403  # the member's own
    finally:
        api.client.close()
        c.dispose()


def test_without_readers_the_bytes_are_gone_in_the_response(sqlite_url, tmp_path):
    api = Api(sqlite_url, tmp_path)
    c = api.c
    for n in ("ana", "bea"):
        c.member(n)
    c.ledger.submit(c.pay("ana", "bea", 10, memo=MARKER))
    try:
        r = api.client.post(f"/v1/accounts/{c.addr('ana')}/erasure", headers=api.h("ana"), json={})
        assert r.status_code == 200 and r.json()["bytesOnDisk"] == "gone", r.text
        assert MARKER.encode() not in bytes_on_disk(sqlite_url, c.ledger)
    finally:
        api.client.close()
        c.dispose()


def test_after_a_restart_nothing_is_gone_until_an_attempt_succeeded(sqlite_url, tmp_path):
    """A new process does not know what an earlier one left pending: it says "pending" until
    its own attempt (started by the question) has succeeded."""
    from ledger.service import Ledger

    api = Api(sqlite_url, tmp_path)
    c = api.c
    c.member("ana")
    api.client.close()
    restarted = Ledger.open(sqlite_url)
    try:
        assert retention.on_disk(restarted, c.addr("ana")) == "pending"
        deadline = time.monotonic() + 60
        while retention.on_disk(restarted, c.addr("ana")) != "gone" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert retention.on_disk(restarted, c.addr("ana")) == "gone"
    finally:
        restarted.close()
        c.dispose()
