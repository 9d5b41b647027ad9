"""Which client a rate limit counts (review of issue 13): uvicorn believed X-Forwarded-For from
127.0.0.1 by default, so any local client, or a proxy that passes the header through, could
pick the address it is counted under. `ayni serve` now believes forwarded headers only from
the addresses given with --forwarded-allow-ips. A real `ayni serve` over real HTTP."""
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ledger import signing
from ledger.community import new_genesis
from ledger.core.typed_data import address_of_key
from ledger.service import Ledger

from .servers import ServerNotReady, free_port, stop_group, wait_ready

BIN = Path(sys.executable).parent


def serve(db_url, tmp_path, *extra: str):
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AYNI_")},
           "AYNI_SESSION_KEY_FILE": str(tmp_path / "session.key"), "AYNI_LIMIT_CHALLENGE_PER_CLIENT": "2/minute"}
    proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", db_url, "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
    except ServerNotReady as exc:
        stop_group(proc)
        pytest.fail(f"{exc}: {proc.stderr.read()}")
    return proc, base


def challenges_from_three_claimed_clients(base: str) -> list[int]:
    return [httpx.post(f"{base}/v1/auth/challenge", json={"address": address_of_key(signing.new_key())},
                       headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(3)]


@pytest.fixture
def db(db_url):
    ledger = Ledger.open(db_url)
    ledger.initialise(new_genesis("proxy", address_of_key(signing.new_key())))
    ledger.engine.dispose()
    return db_url


def test_forwarded_headers_are_ignored_unless_the_proxy_is_named(db, tmp_path):
    proc, base = serve(db, tmp_path)
    try:  # all three come from 127.0.0.1 whatever they claim: the third meets the limit of 2
        assert challenges_from_three_claimed_clients(base) == [200, 200, 429]
    finally:
        stop_group(proc)


def test_a_named_proxy_is_believed(db, tmp_path):
    proc, base = serve(db, tmp_path, "--forwarded-allow-ips", "127.0.0.1")
    try:  # a TLS proxy on this host: each forwarded client is counted apart
        assert challenges_from_three_claimed_clients(base) == [200, 200, 200]
    finally:
        stop_group(proc)
