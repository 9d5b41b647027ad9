"""Exchange-board search benchmark: latency p50/p99 of `Exchange.search` (the code the API's
GET /v1/listings runs) over N listings on SQLite and PostgreSQL, for a mix of searches members
make: newest first, the daily shuffle, filters by kind/category/area/currency, whole-word
full-text search (FTS5 / tsvector GIN), and a second page through the cursor. Target: p99 <= 50 ms
at 100,000 listings. JSON out.

    python benchmarks/listings.py [--scale small|full] [--listings N] [--queries Q] [--pg-url URL] [--out FILE]

The listings are written in bulk straight into the tables (posting 100,000 one by one would
measure posting, not search); their mix is realistic: ~10% expired, ~5% paused or closed,
~1% hidden, text drawn from a vocabulary in which some words are common and most are rare."""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert, text  # noqa: E402

from ledger.core.exchange import DAY_MS, SHUFFLE_PRIME, search_text  # noqa: E402
from ledger.exchange import Exchange  # noqa: E402
from ledger.sample import SampleCommunity  # noqa: E402
from ledger.core.typed_data import address_of_key  # noqa: E402
from ledger.store.exchange_tables import FTS_TABLE, listings  # noqa: E402

SCALES = {"small": {"listings": 2_000, "queries": 40}, "full": {"listings": 100_000, "queries": 300}}
PG_ADMIN_URL = os.environ.get("AYNI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
COMMON = ["care", "help", "weekday", "mornings", "afternoon", "company", "shopping", "cooking", "cleaning", "walks"]
RARE = [f"{a}{b}" for a in ("gar", "bak", "sew", "pai", "mus", "lan", "mat", "bic", "tai", "yog")
        for b in ("den", "ery", "ing", "nt", "ic", "gua", "hs", "ycle", "lor", "a")]


def rows(n: int, authors: list[str], config, now: int, rng: random.Random):
    cats = [c for c, _ in config.categories]
    areas = [a for a, _ in config.areas]
    for i in range(n):
        words = rng.sample(COMMON, 3) + rng.sample(RARE, 3)
        roll = rng.random()
        status = "paused" if roll < 0.03 else "closed" if roll < 0.05 else "active"
        created = now - rng.randrange(0, 60 * DAY_MS)
        expires = created + rng.choice((7, 30, 90)) * DAY_MS
        if rng.random() < 0.10:
            expires = now - rng.randrange(1, 30 * DAY_MS)
        yield {"id": secrets.token_hex(16), "author": authors[i % len(authors)], "kind": rng.choice(("offer", "need")),
               "title": " ".join(words[:3]).capitalize(), "description": " ".join(words[3:] + words[:1]) + ".",
               "category": rng.choice(cats), "area": rng.choice(areas), "currency": rng.choice(("HOUR", "CRED")),
               "price_unit": "hour", "price": 60, "availability": "weekday mornings", "slots": None,
               "status": status, "shuffle_key": rng.randrange(SHUFFLE_PRIME), "shuffle_day": 0, "shuffle_rank": 0,
               "text_rowid": rng.getrandbits(62), "created_at": created,
               "updated_at": created, "expires_at": expires, "closed_at": created + 1 if status == "closed" else None,
               "hidden_at": now if rng.random() < 0.01 else None, "hidden_reason": None,
               "search_text": search_text(" ".join(words[:3]) + " " + " ".join(words[3:] + words[:1]))}


def fill(c: SampleCommunity, n: int, rng: random.Random) -> float:
    keys = c.accounts(200)
    authors = [address_of_key(k) for k in keys]
    x = Exchange(c.ledger)
    t0 = time.perf_counter()
    batch: list[dict] = []
    sqlite = c.ledger.engine.dialect.name == "sqlite"

    def flush():
        with c.ledger.engine.begin() as conn:
            conn.execute(insert(listings), batch)
            if sqlite:
                conn.execute(text(f"INSERT INTO {FTS_TABLE} (rowid, listing_id, title, description) "
                                  "VALUES (:r, :id, :t, :d)"),
                             [{"r": r["text_rowid"], "id": r["id"], "t": search_text(r["title"]),
                               "d": search_text(r["description"])}
                              for r in batch])
        batch.clear()

    for row in rows(n, authors, x.config, c.ledger.clock(), rng):
        batch.append(row)
        if len(batch) == 5000:
            flush()
    if batch:
        flush()
    with c.ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - t0


def query_mix(rng: random.Random, config) -> list[tuple[str, dict]]:
    cats = [c for c, _ in config.categories]
    areas = [a for a, _ in config.areas]
    return [
        ("newest", {}),
        ("shuffle", {"order": "shuffle"}),
        ("category", {"category": rng.choice(cats)}),
        ("kind+area+currency", {"kind": rng.choice(("offer", "need")), "area": rng.choice(areas),
                                "currency": rng.choice(("HOUR", "CRED"))}),
        ("text common word", {"q": rng.choice(COMMON)}),
        ("text rare word", {"q": rng.choice(RARE)}),
        ("text two words + category", {"q": f"{rng.choice(COMMON)} {rng.choice(RARE)}", "category": rng.choice(cats)}),
        ("shuffle + category", {"order": "shuffle", "category": rng.choice(cats)}),
    ]


def measure(x: Exchange, queries: int, rng: random.Random) -> dict:
    per: dict[str, list[float]] = {}
    for _ in range(3):  # warm the caches and the statement compiler
        for _, kw in query_mix(rng, x.config):
            x.search(limit=50, **kw)
    for _ in range(queries):
        for name, kw in query_mix(rng, x.config):
            t0 = time.perf_counter()
            page, cursor, _ = x.search(limit=50, **kw)
            per.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
            if cursor and name in ("newest", "shuffle"):
                t0 = time.perf_counter()
                x.search(limit=50, cursor=cursor, **kw)
                per.setdefault(f"{name} page 2", []).append((time.perf_counter() - t0) * 1000)
    every = [v for vs in per.values() for v in vs]
    return {"all": _summary(every), "by_query": {k: _summary(v) for k, v in per.items()}}


def _summary(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "max_ms": round(ms[-1], 2)}


def run_on(url: str, n: int, queries: int, seed: int) -> dict:
    rng = random.Random(seed)
    c = SampleCommunity(url, name="Listings bench")
    try:
        fill_s = fill(c, n, rng)
        x = Exchange(c.ledger)
        t0 = time.perf_counter()  # the first shuffled search of a day stores that day's ranks
        x.search(order="shuffle", limit=50)
        refresh_ms = (time.perf_counter() - t0) * 1000
        with c.ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")  # as autovacuum does after a day's ranks are rewritten
        visible = len(x.search(limit=500)[0])
        result = measure(x, queries, rng)
        return {"listings": n, "fill_seconds": round(fill_s, 1), "first_page_items": visible,
                "daily_shuffle_refresh_ms": round(refresh_ms, 1), **result}
    finally:
        c.ledger.engine.dispose()


def pg_database(admin_url: str):
    name = f"ayni_bench_listings_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return admin, name, admin_url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--listings", type=int)
    ap.add_argument("--queries", type=int, help="rounds of the query mix")
    ap.add_argument("--pg-url", default=PG_ADMIN_URL, help="an admin URL; a throwaway database is made and dropped")
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--out")
    args = ap.parse_args()
    n = args.listings or SCALES[args.scale]["listings"]
    queries = args.queries or SCALES[args.scale]["queries"]
    out = {"benchmark": "listings", "target_p99_ms": 50, "listings": n, "query_rounds": queries,
           "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
           "databases": {}}
    with tempfile.TemporaryDirectory() as d:
        out["databases"]["sqlite"] = run_on(f"sqlite:///{d}/bench.db", n, queries, args.seed)
    if not args.no_pg:
        try:
            admin, name, url = pg_database(args.pg_url)
        except Exception as exc:  # noqa: BLE001 - no server: say so in the output, measure SQLite only
            out["databases"]["postgresql"] = {"skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        else:
            try:
                out["databases"]["postgresql"] = run_on(url, n, queries, args.seed)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    out["meets_target"] = all(db.get("all", {}).get("p99_ms", 0) <= 50 for db in out["databases"].values())
    doc = json.dumps(out, indent=2)
    if args.out:
        Path(args.out).write_text(doc + "\n")
    print(doc)


if __name__ == "__main__":
    main()
