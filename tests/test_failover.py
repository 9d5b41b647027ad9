"""PostgreSQL failover under the bank workload (tests/pg_ha.py, tests/bank.py): two real
clusters, `ayni serve --workers 2` on a multi-host URL, the primary SIGKILLed mid-load and the
standby promoted; the service is not restarted. docs/high-availability.md has the figures;
benchmarks/failover.py runs longer with several kills.

Synchronous replication (synchronous_commit=on, the standby named synchronous): no
acknowledged transfer may be lost. Asynchronous: what was lost is recorded, not asserted away;
what must hold anyway is asserted (no transfer twice, zero sum, the hash chain and replay).

One pair of clusters serves both tests (a fresh database each): the second starts by
rebuilding the first run's dead primary as the standby with pg_rewind, the documented rejoin.
Both run with the same replication link latency, so the difference is the setting alone."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ledger import signing
from ledger.core import errors as E
from ledger.core.typed_data import address_of_key
from ledger.sample import SampleCommunity
from ledger.service import WRITE_RETRY_S, Ledger
from ledger.store.db import make_engine, multi_host_url

from .conftest import _reset_pg
from .pg_ha import PG_BIN, TAIL_LOSS, Pair, run_failover, unavailable_reason
from .servers import free_port

SECONDS = 8.0  # the kill comes half-way
# Replication goes through a relay adding this one-way latency (a standby in another room or
# data centre): on bare loopback the standby is never far enough behind to lose anything.
LINK_DELAY_S = 0.01
REASON = unavailable_reason()
CLUSTERS = [pytest.mark.slow,
            pytest.mark.skipif(REASON is not None and os.environ.get("CI") != "true",
                               reason=f"no PostgreSQL clusters here: {REASON}")]


# -- multi-host URLs (the local PostgreSQL behind a dead first host) ---------------------------
def _forms(pg_url: str) -> dict[str, str]:
    u = make_url(pg_url)
    host, port, db, dead = u.host, u.port or 5432, u.database, free_port()  # nothing listens on `dead`
    rw = "target_session_attrs=read-write"
    return {
        "libpq URI": f"postgresql+psycopg://postgres@127.0.0.1:{dead},{host}:{port}/{db}?{rw}",
        "host list": f"postgresql://postgres@/{db}?host=127.0.0.1:{dead},{host}:{port}&{rw}",
        "host and port lists": f"postgresql+psycopg://postgres@/{db}?host=127.0.0.1,{host}&port={dead},{port}&{rw}",
        "repeated host": f"postgresql+psycopg://postgres@/{db}?host=127.0.0.1:{dead}&host={host}:{port}&{rw}",
    }


@pytest.mark.postgres
@pytest.mark.parametrize("form", ["libpq URI", "host list", "host and port lists", "repeated host"])
def test_a_multi_host_url_reaches_the_writable_server_past_a_dead_one(pg_server_url, form):
    engine = make_engine(_forms(pg_server_url)[form], create=False)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT inet_server_port()")).scalar() == (make_url(pg_server_url).port or 5432)
            assert conn.execute(text("SHOW transaction_read_only")).scalar() == "off"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_service_posts_through_a_multi_host_url(pg_server_url):
    _reset_pg(pg_server_url)
    url = _forms(pg_server_url)["libpq URI"]
    c = SampleCommunity(url, name="multi-host")  # `ayni init` and posting, all through the list
    try:
        payer, payee = c.accounts(2)
        posted = c.ledger.submit(signing.transfer(payer, c.domain, payee=address_of_key(payee),
                                                  currency="HOUR", amount=5))
    finally:
        c.ledger.close()
    direct = Ledger.open(pg_server_url, migrate=False)
    try:
        assert direct.head()[0] == posted.seq
    finally:
        direct.close()


@pytest.mark.postgres
def test_ayni_init_and_verify_take_a_multi_host_url(pg_server_url, tmp_path):
    _reset_pg(pg_server_url)
    url = _forms(pg_server_url)["host list"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}
    ayni = [str(Path(sys.executable).parent / "ayni")]
    r = subprocess.run([*ayni, "init", "--db", url, "--treasurer", address_of_key(signing.new_key())],
                       check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    v = subprocess.run([*ayni, "verify", "--db", url, "--json"], check=False, capture_output=True, text=True,
                       env=env,
                       cwd=tmp_path, timeout=120)
    assert v.returncode == 0 and json.loads(v.stdout)["entries"] == 1, v.stderr
    server = json.loads(v.stdout)["server"]  # which server was checked, past the dead first host
    assert server["address"].endswith(f":{make_url(pg_server_url).port or 5432}") and server["timeline"] >= 1


def test_a_url_without_several_hosts_is_left_as_it_is():
    for url in ("sqlite:///ayni-data/ayni.db", "postgresql+psycopg://u:p%40ss@db.example:5433/ayni?sslmode=require",
                "postgresql://u@/ayni?host=/run/postgresql"):
        assert multi_host_url(url) == url
    assert multi_host_url("postgresql://u:pw@a:1,b:2/db?x=1") == "postgresql://u:pw@/db?host=a:1&host=b:2&x=1"


def test_no_writable_server_is_a_retryable_unavailable_error():
    dead = free_port()
    with pytest.raises(E.StoreConnectionLost) as exc:  # HTTP 503 with Retry-After in the API
        Ledger.open(f"postgresql://postgres@127.0.0.1:{dead},127.0.0.1:{dead}/x?connect_timeout=2", migrate=False)
    assert exc.value.code == "unavailable" and "\n" not in str(exc.value) and "retry" in str(exc.value)


# -- the failover runs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair():
    if REASON is not None:
        pytest.fail(f"CI=true but two PostgreSQL clusters cannot be made here: {REASON}")
    p = Pair.create(synchronous=True, link_delay_s=LINK_DELAY_S)
    try:
        yield p
    finally:
        p.destroy()


def _common(r):
    f = r.figures
    print(f)
    other = [x for x in r.faults if not any(m in x for m in TAIL_LOSS)]
    assert not other, "\n".join(other[:20])  # never twice, zero sum, limits, replay, hash chain
    assert f["verify_ok"], r.verify_output  # `ayni verify` on the promoted node
    assert f["unresolved"] == 0  # every in-flight transfer got a definite answer after the failover
    assert f["served_by_one_process"] and f["acknowledged_after_last_kill"] > 0  # no restart needed
    assert f["transfers_acknowledged"] > 30, f
    assert f["answers_5xx_not_retryable"] == 0, f["answers_5xx_messages"]  # only 503 + Retry-After
    assert f["reads_5xx_not_retryable"] == 0, f["reads_5xx_messages"]  # reads too (sign-in, sessions)


@CLUSTERS[0]
@CLUSTERS[1]
def test_synchronous_failover_loses_no_acknowledged_transfer(pair):
    # promoted later than the service's own retry window: clients get 503 + Retry-After and
    # retry the same signed transfer (the path a slow, human promotion takes)
    r = run_failover(synchronous=True, seconds=SECONDS, promote_after_s=WRITE_RETRY_S + 1,
                     pair=pair, db="ayni_sync")
    _common(r)
    f = r.figures
    assert f["acknowledged_lost"] == 0, [x for x in r.faults if "is in the log at" in x][:10]
    # with synchronous replication the checker finds nothing at all: no lost acknowledgement, no
    # read that showed a state the failover lost (a commit waiting for the standby stays
    # invisible to other sessions), reads never going back
    assert not r.faults, "\n".join(r.faults[:20])
    assert f["answers_503"] > 0  # the failover was seen, and retried through


@CLUSTERS[0]
@CLUSTERS[1]
def test_asynchronous_failover_keeps_the_ledger_sound_and_counts_what_it_lost(pair):
    # promoted at once: the service's own retry absorbs the switch
    r = run_failover(synchronous=False, seconds=SECONDS, pair=pair, db="ayni_async")
    _common(r)
    f = r.figures
    # the loss itself is the figure this run exists for (docs/high-availability.md): recorded
    print(f"asynchronous failover: {f['acknowledged_lost']} acknowledged transfers lost "
          f"of {f['transfers_acknowledged']}")


@pytest.mark.postgres
def test_the_federation_driver_lock_is_not_held_by_a_dead_session(pg_server_url):
    # a failover drops the server session that held the advisory lock: on the new primary the lock
    # is free and another process may take it, so the old holder must notice and stop driving
    from ledger.federation.driver import driver_lock
    engine = make_engine(pg_server_url, create=False)
    try:
        first, second = driver_lock(engine), driver_lock(engine)
        assert first.try_acquire() and not second.try_acquire()
        pid = first._conn.execute(text("SELECT pg_backend_pid()")).scalar()
        first._conn.commit()
        with engine.connect() as admin:  # what a dead server does to the lock
            admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        assert second.try_acquire()
        assert not first.try_acquire()  # the ghost is dropped; the lock now belongs to `second`
        second.release()
        assert first.try_acquire()
        first.release()
    finally:
        engine.dispose()


def _admin(pg_url: str):
    from sqlalchemy import create_engine
    return create_engine(make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT")


@pytest.mark.postgres
def test_a_database_whose_log_went_back_or_forked_is_refused(pg_server_url):
    # An old primary that comes back first in the URL, or a restored backup under a running
    # service: the log behind what the process saw, or a different entry at a seq it knows.
    # Posting there would fork the ledger; reads would go back in time. 503, nothing posted.
    _reset_pg(pg_server_url)
    db = make_url(pg_server_url).database
    old, new = f"{db}_old", f"{db}_new"
    admin = _admin(pg_server_url)
    c = SampleCommunity(pg_server_url)
    c.ledger.fork_guard = True  # as `ayni serve` runs it (api.app)
    try:
        c.member("a"), c.member("b")
        c.ledger.engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{old}"'))
            conn.execute(text(f'CREATE DATABASE "{old}" TEMPLATE "{db}"'))  # the old primary, one entry behind
        posted = c.ledger.submit(c.pay("a", "b", 3))
        assert c.ledger.head()[0] == posted.seq
        # the guard knows the server's timeline (a newer one, a promoted standby whose log lost its
        # tail to asynchronous replication, is accepted; the same one, as here, is not)
        assert c.ledger._seen[2] == c.ledger.server_info()["timeline"] == 1
        c.ledger.engine.dispose()
        with admin.connect() as conn:  # the old primary comes back under the same URL
            conn.execute(text(f'ALTER DATABASE "{db}" RENAME TO "{new}"'))
            conn.execute(text(f'ALTER DATABASE "{old}" RENAME TO "{db}"'))
        with pytest.raises(E.StoreUnavailable, match="behind or differs"):
            c.ledger.head()
        with pytest.raises(E.StoreUnavailable, match="behind or differs"):  # reads never go back
            c.ledger.balance_sheet()
        with pytest.raises(E.StoreUnavailable, match="behind or differs"):
            c.ledger.submit(c.pay("b", "a", 1))
        # someone "unblocks" the old primary and it takes a different payment at the same seq
        other = Ledger.open(pg_server_url, migrate=False)
        try:
            assert other.submit(c.pay("b", "a", 2)).seq == posted.seq
            other.submit(c.pay("b", "a", 4))  # and moves past it: a fork, not a rollback
        finally:
            other.close()
        with pytest.raises(E.StoreUnavailable, match="behind or differs"):
            c.ledger.submit(c.pay("a", "b", 5))
        c.ledger.engine.dispose()
        with admin.connect() as conn:  # fenced: the promoted node again
            conn.execute(text(f'ALTER DATABASE "{db}" RENAME TO "{old}"'))
            conn.execute(text(f'ALTER DATABASE "{new}" RENAME TO "{db}"'))
        assert c.ledger.submit(c.pay("a", "b", 6)).seq == posted.seq + 1
    finally:
        c.ledger.close()
        with admin.connect() as conn:
            for name in (old, new):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_a_commit_that_never_returns_answers_outcome_unknown_and_a_retry_finds_it(pg_server_url):
    # A COMMIT waiting for a synchronous standby that is gone never returns. The caller must get a
    # bounded 503 "outcome unknown, retry the same request", never a hang nor a 500 "nothing was
    # acknowledged"; the retry answers the original seq once the commit goes through.
    import asyncio

    from ledger.group_commit import GroupCommitter
    _reset_pg(pg_server_url)
    c = SampleCommunity(pg_server_url)
    committer = GroupCommitter(c.ledger, wait_s=0.5)
    blocker = c.ledger.engine.connect()
    try:
        c.member("a"), c.member("b")
        action = signing.set_limit(c.treasurer_key, c.domain, account=c.addr("a"), currency="HOUR",
                                   credit_limit=555)
        pay = c.pay("a", "b", 7)
        head = c.ledger.head()[0]
        # the writer stalls as it would in COMMIT: here on the head lock another session holds
        blocker.execute(text("SELECT seq FROM ledger_head FOR UPDATE"))
        for attempt in (lambda: committer.submit(action), lambda: asyncio.run(committer.submit_async(pay))):
            with pytest.raises(E.StoreConnectionLost, match="outcome is unknown") as exc:
                attempt()
            assert exc.value.code == "unavailable"  # HTTP 503 with Retry-After
        blocker.rollback()  # the standby came back
        again = committer.submit(action)
        assert again.duplicate and again.seq == head + 1  # it had committed: the retry says so
        paid = asyncio.run(committer.submit_async(pay))
        assert paid.duplicate and paid.seq == head + 2
    finally:
        blocker.close()
        committer.close()
        c.ledger.close()


# -- URL spellings, mistakes and passwords (no server needed) -------------------------------------
def test_every_documented_multi_host_spelling_gives_the_same_libpq_keywords():
    from ledger.store.db import libpq_conninfo, normalized_url
    want = {"user": "ayni", "password": "p@ss,:/", "dbname": "ayni", "host": "db1,db2", "port": "5432,5433",
            "target_session_attrs": "read-write"}
    pw, rw = "p%40ss%2C%3A%2F", "target_session_attrs=read-write"
    for url in (f"postgresql+psycopg://ayni:{pw}@db1:5432,db2:5433/ayni?{rw}",
                f"postgresql://ayni:{pw}@/ayni?host=db1:5432,db2:5433&{rw}",
                f"postgresql+psycopg://ayni:{pw}@/ayni?host=db1,db2&port=5432,5433&{rw}",
                f"postgresql+psycopg://ayni:{pw}@/ayni?host=db1:5432&host=db2:5433&{rw}"):
        assert libpq_conninfo(url) == want, url
        assert libpq_conninfo(normalized_url(url)) == want, url  # the form make_engine uses
    # IPv6 (bracketed in the URI form, as libpq wants), and a host list without ports
    assert libpq_conninfo("postgresql://u@[::1]:5432,[fe80::2]/d") == {
        "user": "u", "dbname": "d", "host": "::1,fe80::2", "port": "5432,"}
    assert libpq_conninfo("postgresql://u@/d?host=db1,db2") == {"user": "u", "dbname": "d", "host": "db1,db2"}
    make_engine("postgresql+psycopg://u:pw@[::1]:5432,[::1]:5433/ayni").dispose()  # was a raw ValueError


@pytest.mark.parametrize("url, says", [
    ("postgresql+psycopg://u:S3cr/t@db1:5432,db2:5433/a?connect_timeout=abc", "connect_timeout"),
    ("postgresql+psycopg://u:S3cr/t@/a?host=db1:5432,db2:5433&port=5432,5433", "mixes"),
    ("postgresql+psycopg://u:S3cr/t@/a?host=db1,db2,db3&port=1,2", "3 hosts but 2 ports"),
    ("postgresql+psycopg://u:S3cr/t@db1:x,db2:5433/a", "not a number"),
    ("postgresql+psycopg://u:S3cr/t@[::1:5432,db2/a", ""),
])
def test_a_database_url_mistake_is_invalid_input_in_one_line_without_the_password(url, says):
    # a configuration mistake is permanent: invalid_input, not the retryable `unavailable`; and
    # the message (journals, tickets) never carries the password
    with pytest.raises(E.LedgerError) as exc:
        make_engine(url, create=False)
    assert exc.value.code in ("invalid_input", "not_initialised"), exc.value
    assert says in exc.value.message and "S3cr" not in str(exc.value) and "\n" not in str(exc.value)


def test_the_ayni_commands_print_no_password_and_no_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}
    ayni = str(Path(sys.executable).parent / "ayni")
    for args in (["verify", "--db", "postgresql://u:S3cr%2Ft@db1:5432,db2:5433/a?connect_timeout=abc"],
                 ["doctor", "--db", "postgresql://u:S3cr%2Ft@[::1]:1,db2:5433/a?connect_timeout=abc"]):
        r = subprocess.run([ayni, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
                           check=False)
        out = r.stdout + r.stderr
        assert r.returncode != 0 and "Traceback" not in out and "S3cr" not in out, out
        assert "connect_timeout" in out, out


@pytest.mark.postgres
def test_a_host_list_without_ports_uses_the_default_port(pg_server_url):
    u = make_url(pg_server_url)
    if (u.port or 5432) != 5432:
        pytest.skip("the local server is not on the default port")
    engine = make_engine(f"postgresql://postgres@/{u.database}?host={u.host},{u.host}&target_session_attrs=read-write",
                         create=False)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT inet_server_port()")).scalar() == 5432
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_sign_in_and_signed_in_reads_answer_503_with_retry_after_while_the_database_is_gone(pg_server_url, tmp_path):
    # during a failover every route, not just posting, answers the retryable 503 (docs section 3):
    # sign-in (rate limiter, challenge store) and signed-in reads (the session check) had answered
    # 500 internal_error
    from .test_api import Api
    _reset_pg(pg_server_url)
    db = make_url(pg_server_url).database
    a = Api(pg_server_url, tmp_path)
    admin = _admin(pg_server_url)
    try:
        h = {**a.h("treasurer"), "Ayni-Purpose": "reconciliation"}
        assert a.client.get("/v1/balances", headers=h).status_code == 200
        with admin.connect() as conn:  # the server is gone: nothing connects, what was open dies
            conn.execute(text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": db})
        for r in (a.client.get("/v1/balances", headers=h),
                  a.client.post("/v1/auth/challenge", json={"address": a.c.treasurer}),
                  a.client.get("/readyz")):
            assert r.status_code == 503, r.text
            if r.request.url.path != "/readyz":
                assert r.json()["error"]["code"] == "unavailable" and r.headers.get("retry-after"), r.text
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true'))
        assert a.client.get("/v1/balances", headers=h).status_code == 200  # back, no restart
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        a.client.close()
        a.c.dispose()


@pytest.mark.postgres
def test_libpq_conninfo_takes_pg_dump_past_dead_hosts(pg_server_url):
    # how `ayni backup` (and any libpq tool) uses a failover URL: the keywords as a conninfo, the
    # password in PGPASSWORD (never on a command line)
    from psycopg.conninfo import make_conninfo

    from ledger.store.db import libpq_conninfo
    _reset_pg(pg_server_url)
    SampleCommunity(pg_server_url).dispose()
    for url in _forms(pg_server_url).values():
        info = libpq_conninfo(url.replace("postgres@", "postgres:unused%40pw@", 1))
        env = {**os.environ, "PGPASSWORD": info.pop("password")}
        r = subprocess.run([str(PG_BIN / "pg_dump"), "--schema-only", "-t", "ledger_head",
                            "-d", make_conninfo(**info)], capture_output=True, text=True, env=env, timeout=60,
                           check=False)
        assert r.returncode == 0 and "CREATE TABLE public.ledger_head" in r.stdout, (url, r.stderr)
