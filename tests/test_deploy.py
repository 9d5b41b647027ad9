"""The deployment in deploy/ and docs/deploy.md, checked with the real tools, loopback only.

What a newcomer following docs/deploy.md relies on, run here as far as it can run without a
VM: the shipped Caddyfile is valid for Caddy; Caddy started from it (with `tls internal`
instead of a public certificate, and free loopback ports) serves a real `ayni serve` over
HTTPS that verifies against Caddy's own root certificate; /metrics is not exposed through it;
the Prometheus alert rules load and their unit tests pass in promtool; every metric the rules
use is exported by a real server's /metrics; the systemd units pass `systemd-analyze verify`
and every option their command lines use exists in `ayni`. The files are read from deploy/,
never copied into this test, so the test and the documented files cannot drift apart."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from ledger import signing
from ledger.core.typed_data import address_of_key
from ledger.service import Ledger

from . import servers
from .hardhat_node import HARDHAT_KEYS, hardhat_node
from .test_api import transfer_body
from .test_federation_ledger import Net, ally, pair, remote  # noqa: F401 - `pair` is a fixture used below

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
UNITS = ["ayni-serve.service", "ayni-anchor.service", "ayni-retention.service", "ayni-retention.timer"]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"SKIPPED LOUDLY: `{tool}` is not installed here; install it (Debian package) to run this check")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a real server: one SQLite community, a real chain node for the balance gauge ------------
@pytest.fixture(scope="module")
def node():
    with hardhat_node() as url:
        yield url


@pytest.fixture(scope="module")
def server(node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    url = f"sqlite:///{tmp / 'data' / 'ayni.db'}"
    treasurer, ana, bea = signing.new_key(), signing.new_key(), signing.new_key()
    ledger = Ledger.create(url)
    try:
        from ledger.community import new_genesis
        ledger.initialise(new_genesis("Deploy test", address_of_key(treasurer)))
        for k in (ana, bea):
            ledger.submit(signing.open_account(treasurer, ledger.genesis.domain, account=address_of_key(k)))
        domain = ledger.genesis.domain
    finally:
        ledger.close()
    # what ayni-retention.service's ExecStartPost writes after a successful run
    (tmp / "data" / "retention-last-success").write_text("1700000000\n")
    port = free_port()
    https_port = free_port()
    env = servers.clean_env(AYNI_SESSION_KEY_FILE=str(tmp / "data" / "session.key"), AYNI_CHAIN_URL=node,
                            AYNI_ANCHOR_CONTRACT="0x" + "ab" * 20,
                            AYNI_ANCHOR_ADDRESS=address_of_key(HARDHAT_KEYS[0]))
    # the command line of deploy/systemd/ayni-serve.service, on a free port
    proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", url, "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1", "--public-uri", f"https://localhost:{https_port}",
                             "--forwarded-allow-ips", "127.0.0.1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        servers.wait_ready(base, proc)
        yield {"base": base, "port": port, "https_port": https_port, "tmp": tmp, "domain": domain,
               "ana": ana, "bea": bea}
    finally:
        servers.stop_group(proc)


# -- Caddy -----------------------------------------------------------------------------------
def caddy_env(tmp: Path, domain: str) -> dict:
    """Caddy keeps its certificates and CA under XDG_DATA_HOME: a temp folder, never the host's."""
    for d in ("xdg-data", "xdg-config"):
        (tmp / d).mkdir(exist_ok=True)
    return {**os.environ, "XDG_DATA_HOME": str(tmp / "xdg-data"), "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
            "HOME": str(tmp), "AYNI_DOMAIN": domain}


def test_the_shipped_caddyfile_is_valid(tmp_path):
    caddy = need("caddy")
    r = subprocess.run([caddy, "validate", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
                       env=caddy_env(tmp_path, "ayni.example.org"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Valid configuration" in r.stdout + r.stderr, r.stderr
    fmt = subprocess.run([caddy, "fmt", str(DEPLOY / "Caddyfile")], capture_output=True, text=True, timeout=30)
    assert fmt.stdout == (DEPLOY / "Caddyfile").read_text(), "deploy/Caddyfile is not `caddy fmt` formatted"


def derived_caddyfile(upstream_port: int, http_port: int, https_port: int) -> str:
    """The shipped Caddyfile as it runs here: a certificate from Caddy's internal CA instead of
    Let's Encrypt (no public DNS name on a test machine), free loopback ports, no admin API.
    Everything else (the /metrics block, headers, proxy, log filter) is the shipped text."""
    text = (DEPLOY / "Caddyfile").read_text()
    assert text.count("reverse_proxy 127.0.0.1:8000") == 1 and text.count("{$AYNI_DOMAIN} {") == 1
    text = text.replace("reverse_proxy 127.0.0.1:8000", f"reverse_proxy 127.0.0.1:{upstream_port}")
    text = text.replace("{$AYNI_DOMAIN} {", "{$AYNI_DOMAIN} {\n\ttls internal\n\tbind 127.0.0.1")
    return ("{\n\tadmin off\n\tskip_install_trust\n\tauto_https disable_redirects\n"
            f"\thttp_port {http_port}\n\thttps_port {https_port}\n}}\n\n" + text)


@pytest.fixture(scope="module")
def caddy(server):
    binary = need("caddy")
    tmp = server["tmp"]
    https_port = server["https_port"]
    config = tmp / "Caddyfile"
    config.write_text(derived_caddyfile(server["port"], free_port(), https_port))
    env = caddy_env(tmp, f"localhost:{https_port}")
    log = open(tmp / "caddy.log", "w")
    proc = subprocess.Popen([binary, "run", "--config", str(config), "--adapter", "caddyfile"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    root_cert = tmp / "xdg-data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert proc.poll() is None, (tmp / "caddy.log").read_text()
            if root_cert.exists():
                try:
                    with socket.create_connection(("127.0.0.1", https_port), timeout=1):
                        break
                except OSError:
                    pass
            assert time.monotonic() < deadline, "Caddy did not listen: " + (tmp / "caddy.log").read_text()
            time.sleep(0.2)
        # real verification: only Caddy's own root is trusted, and the name must match
        trust = ssl.create_default_context(cafile=str(root_cert))
        yield {"base": f"https://localhost:{https_port}", "verify": trust}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def get_ok(url: str, verify, attempts: int = 50):
    """Caddy may answer its first TLS handshakes before the internal certificate is issued."""
    last = None
    for _ in range(attempts):
        try:
            return httpx.get(url, verify=verify, timeout=5)
        except httpx.ConnectError as exc:
            last = exc
            time.sleep(0.2)
    raise AssertionError(f"no HTTPS answer from {url}: {last}")


def test_https_through_caddy_to_a_real_ayni_serve(server, caddy):
    r = get_ok(f"{caddy['base']}/v1/community", caddy["verify"])
    assert r.status_code == 200 and r.json(), r.text
    assert r.http_version in ("HTTP/1.1", "HTTP/2")
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    assert "server" not in r.headers  # neither Caddy's nor uvicorn's name and version
    page = httpx.get(f"{caddy['base']}/", verify=caddy["verify"], timeout=5)
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    # the service's internals stay on the host: Prometheus scrapes 127.0.0.1:8000 directly
    for internal in ("/metrics", "/healthz", "/readyz"):
        assert httpx.get(f"{caddy['base']}{internal}", verify=caddy["verify"], timeout=5).status_code == 404
    # variants answered by Caddy itself (an empty body; the app's 404 is JSON): they never reach
    # the app, so a later change of its slash or path handling cannot expose them
    for variant in ("/metrics/", "/metrics;x", "/metrics%2f", "/metricsx", "/readyz/", "/healthz/x"):
        r = httpx.get(f"{caddy['base']}{variant}", verify=caddy["verify"], timeout=5)
        assert r.status_code == 404 and r.content == b"", (variant, r.text)
    # the access log keeps neither a member's address nor a query string, and masks the client
    member = address_of_key(server["ana"])
    httpx.get(f"{caddy['base']}/v1/accounts/{member}/profile?token=QUERYSECRET", verify=caddy["verify"], timeout=5)
    deadline = time.monotonic() + 10
    while "/v1/accounts/*/profile" not in (log := (server["tmp"] / "caddy.log").read_text()):
        assert time.monotonic() < deadline, log[-2000:]
        time.sleep(0.1)
    assert member.lower()[2:] not in log.lower() and "QUERYSECRET" not in log
    assert '"remote_ip":"127.0.0.0"' in log, log[-2000:]
    # a member's signed payment goes through the proxy and is acknowledged
    pay = signing.transfer(server["ana"], server["domain"], payee=address_of_key(server["bea"]), currency="HOUR",
                           amount=3)
    posted = httpx.post(f"{caddy['base']}/v1/transfers", json=transfer_body(pay), verify=caddy["verify"], timeout=10)
    assert posted.status_code == 201, posted.text
    # and the verification is real: a client that does not trust Caddy's root refuses it
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{caddy['base']}/v1/community", timeout=5)


# -- Prometheus ------------------------------------------------------------------------------
def test_alert_rules_load_and_their_unit_tests_pass():
    promtool = need("promtool")
    r = subprocess.run([promtool, "check", "rules", "ayni-alerts.yml"], cwd=DEPLOY / "prometheus",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    t = subprocess.run([promtool, "test", "rules", "ayni-alerts.test.yml"], cwd=DEPLOY / "prometheus",
                       capture_output=True, text=True, timeout=120)
    assert t.returncode == 0 and "SUCCESS" in t.stdout, t.stdout + t.stderr


PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers outside label matchers, range
    selectors and grouping clauses, not followed by "(" (functions), not PromQL keywords."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[m.end():].lstrip()
        if rest.startswith("(") or m.group() in PROMQL_WORDS or re.fullmatch(r"\d*e\d+", m.group()):
            continue
        names.add(m.group())
    return names


def scraped_names(text: str) -> set[str]:
    return {re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group() for line in text.splitlines()
            if line and not line.startswith("#")}


def test_every_metric_the_alert_rules_use_is_exported_by_a_real_server(server, caddy):
    """A rule on a metric we do not export never fires: the worst kind of alert. `up` is the
    only exception, recorded by Prometheus itself for every scrape."""
    # a posting through the proxy (the test above) may run in another order: post here too
    pay = signing.transfer(server["bea"], server["domain"], payee=address_of_key(server["ana"]), currency="HOUR",
                           amount=1)
    assert httpx.post(f"{server['base']}/v1/transfers", json=transfer_body(pay), timeout=10).status_code == 201
    text = httpx.get(f"{server['base']}/metrics", timeout=10).text
    exported = scraped_names(text)
    rules = yaml.safe_load((DEPLOY / "prometheus" / "ayni-alerts.yml").read_text())
    used = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            used |= metric_names(rule["expr"])
    assert "ayni_posting_seconds_bucket" in used and "ayni_anchor_key_balance_wei" in used
    missing = used - exported - {"up"}
    assert not missing, f"alert rules use metrics /metrics does not export: {sorted(missing)}"
    # the values behind them are the server's real state
    values = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(ayni_[a-z_]+) ([0-9.e+]+)$", text, re.M)}
    assert values["ayni_posting_seconds_count"] >= 1 and values["ayni_database_up"] == 1
    assert values["ayni_anchor_key_balance_wei"] > 10**18  # Hardhat's funded dev account
    assert values["ayni_anchor_lag_entries"] >= 4  # genesis, two accounts, a transfer: nothing anchored
    assert values["ayni_federation_legs_pending"] == 0
    assert 0 <= values["ayni_db_pool_checked_out"] <= values["ayni_db_pool_capacity"]
    assert values["ayni_retention_last_success_timestamp_seconds"] == 1700000000


def test_two_workers_export_the_servers_counters_monotonic_whichever_answers(tmp_path):
    """With `--workers 2` (the guide's AYNI_WORKERS=2) one scrape target is served by two
    processes and each scrape lands on either. The counters must be the server's, not one
    worker's: monotonic across scrapes and equal to the postings made, or rate() reads every
    switch of worker as a counter reset and the latency and 5xx alerts go blind."""
    url = f"sqlite:///{tmp_path / 'ayni.db'}"
    treasurer, ana, bea = signing.new_key(), signing.new_key(), signing.new_key()
    ledger = Ledger.create(url)
    try:
        from ledger.community import new_genesis
        ledger.initialise(new_genesis("Two workers", address_of_key(treasurer)))
        for k in (ana, bea):
            ledger.submit(signing.open_account(treasurer, ledger.genesis.domain, account=address_of_key(k)))
        domain = ledger.genesis.domain
    finally:
        ledger.close()
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    env = servers.clean_env(AYNI_SESSION_KEY_FILE=str(tmp_path / "session.key"), AYNI_METRICS_DIR=str(metrics_dir))
    proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", url, "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def posting_count() -> int:  # a fresh connection per scrape, as Prometheus's every 15 s
        text = httpx.get(f"{base}/metrics", timeout=10, headers={"connection": "close"}).text
        return int(re.search(r"^ayni_posting_seconds_count (\d+)$", text, re.M).group(1))

    try:
        servers.wait_ready(base, proc)
        deadline = time.monotonic() + 60  # both workers up: each has written its snapshot
        while len(list(metrics_dir.glob("worker-*.json"))) < 2 and time.monotonic() < deadline:
            httpx.get(f"{base}/healthz", timeout=10, headers={"connection": "close"})
            time.sleep(0.2)
        assert len(list(metrics_dir.glob("worker-*.json"))) == 2
        seen, n = [], 12
        for i in range(n):
            pay = signing.transfer(ana, domain, payee=address_of_key(bea), currency="HOUR", amount=1 + i)
            r = httpx.post(f"{base}/v1/transfers", json=transfer_body(pay), timeout=10, headers={"connection": "close"})
            assert r.status_code == 201, r.text
            seen.append(posting_count())
        time.sleep(1.5)  # the other worker's snapshot is at most FLUSH_S (1 s) old
        seen += [posting_count() for _ in range(8)]
        assert seen == sorted(seen), f"a counter went down between scrapes: {seen}"
        assert seen[-8:] == [n] * 8, seen
    finally:
        servers.stop_group(proc)


# -- systemd ---------------------------------------------------------------------------------
def systemd_analyze() -> str:
    tool = need("systemd-analyze")
    probe = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: systemd-analyze cannot run here: {probe.stderr.strip()}")
    return tool


def test_systemd_units_verify(tmp_path):
    """`systemd-analyze verify` checks every directive and specifier; an unknown key is only a
    warning to it, so any output at all fails here. ExecStart's /opt/ayni/venv/bin/ayni is
    pointed at this environment's `ayni` (verify insists the binary exists)."""
    tool = systemd_analyze()
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text().replace("/opt/ayni/venv/bin/ayni", str(BIN / "ayni"))
        (tmp_path / name).write_text(text)
    # the federation drop-in, applied to the serve unit as systemd would (ExecStart= reset first)
    serve = (tmp_path / "ayni-serve.service").read_text()
    dropin = (DEPLOY / "systemd" / "ayni-serve-federation.conf").read_text().replace(
        "/opt/ayni/venv/bin/ayni", str(BIN / "ayni"))
    (tmp_path / "ayni-serve-federated.service").write_text(serve + "\n" + dropin)
    r = subprocess.run([tool, "verify", *[str(tmp_path / n) for n in [*UNITS, "ayni-serve-federated.service"]]],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr
    # and the check bites: a misspelt hardening directive is reported
    (tmp_path / "bad.service").write_text(serve.replace("ProtectSystem=strict", "ProtectSystm=strict"))
    bad = subprocess.run([tool, "verify", str(tmp_path / "bad.service")], capture_output=True, text=True, timeout=60)
    assert "Unknown key" in bad.stderr


def exec_lines() -> list[tuple[str, list[str]]]:
    out = []
    for path in sorted((DEPLOY / "systemd").iterdir()):
        for line in path.read_text().splitlines():
            if line.startswith("ExecStart=/"):
                out.append((path.name, line.split("=", 1)[1].split()))
    return out


def test_unit_command_lines_use_real_ayni_options():
    """systemd cannot know `ayni`'s options: each ExecStart's flags must be in its --help."""
    seen = 0
    for unit, argv in exec_lines():
        assert argv[0] == "/opt/ayni/venv/bin/ayni", unit
        words = [w for w in argv[1:] if not w.startswith(("-", "$", "%"))]
        sub = words[:2] if words[0] == "retention" else words[:1]
        helptext = subprocess.run([str(BIN / "ayni"), *sub, "--help"], capture_output=True, text=True,
                                  timeout=60, env={**os.environ, "COLUMNS": "250"}).stdout
        for flag in (w for w in argv[1:] if w.startswith("--")):
            assert flag in helptext, f"{unit}: `ayni {' '.join(sub)}` has no option {flag}"
            seen += 1
    assert seen >= 8


def test_no_secret_is_in_a_unit_or_the_environment_file():
    """Passphrases and keystores reach the services as LoadCredential= files, never as
    environment values (visible in `systemctl show` and to every process of the user)."""
    env = (DEPLOY / "systemd" / "ayni.env").read_text()
    settings = dict(line.split("=", 1) for line in env.splitlines() if line and not line.startswith("#"))
    assert not {k for k in settings if "PASSWORD" in k or "SECRET" in k or k.endswith("_KEY")}
    for path in (DEPLOY / "systemd").iterdir():
        text = path.read_text()
        assert "AYNI_ANCHOR_PASSWORD" not in text and "AYNI_NODE_PASSWORD" not in text, path.name
        for cred in re.findall(r"^LoadCredential=[^:]+:(\S+)$", text, re.M):
            assert cred.startswith("/etc/ayni/secrets/"), cred


def test_the_guide_names_every_shipped_file():
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for path in [*(DEPLOY / "systemd").iterdir(), DEPLOY / "Caddyfile", *(DEPLOY / "prometheus").iterdir()]:
        assert f"deploy/{path.relative_to(DEPLOY)}" in guide, f"docs/deploy.md never mentions {path.name}"


def test_the_documented_init_and_doctor_lines_with_the_shipped_environment_file(tmp_path):
    """docs/deploy.md runs `ayni init` and `ayni doctor` as the service user with the environment
    file sourced by sh (`set -a; . /etc/ayni/ayni.env`): the shipped template must source
    cleanly, and a fresh embedded-SQLite deployment made that way must pass the doctor. Only
    the paths differ from the guide (a temp folder instead of /var/lib/ayni)."""
    guide = (ROOT / "docs" / "deploy.md").read_text()
    assert "set -a; . /etc/ayni/ayni.env; cd /var/lib/ayni && exec /opt/ayni/venv/bin/ayni doctor" in guide
    assert "cd /var/lib/ayni;" not in guide  # sh goes on after a failed `cd`: run ayni elsewhere
    # the guide makes the state folder itself (the units' StateDirectory= comes later, and the
    # service user may not create it under /var/lib): nothing here exists before that line
    make_dir = re.search(r"^sudo (install -d -o ayni -g ayni -m 0700 /var/lib/ayni)\b", guide, re.M)
    assert make_dir, "docs/deploy.md must create /var/lib/ayni before `ayni init`"
    assert guide.index(make_dir.group(0)) < guide.index("ayni init --community")
    data = tmp_path / "var-lib-ayni"
    env_file = tmp_path / "ayni.env"
    text = (DEPLOY / "systemd" / "ayni.env").read_text()
    assert text.count("\nAYNI_DB_URL=") == 1 and "\n#AYNI_DB_URL=sqlite:////var/lib/ayni/ayni.db" in text
    text = text.replace("\nAYNI_DB_URL=", "\n#AYNI_DB_URL=").replace(
        "\n#AYNI_DB_URL=sqlite:////var/lib/ayni/ayni.db", f"\nAYNI_DB_URL=sqlite:///{data}/ayni.db")
    text = text.replace("/var/lib/ayni", str(data))
    env_file.write_text(text)
    base = servers.clean_env()

    def as_service(command: str):
        return subprocess.run(["sh", "-c", f"set -a; . {env_file}; cd {data} && exec {BIN / 'ayni'} {command}"],
                              capture_output=True, text=True, timeout=120, env=base, cwd=tmp_path)

    treasurer = address_of_key(signing.new_key())
    # without the folder the documented line stops at `cd`, and nothing is created elsewhere
    r = as_service(f'init --community "Our care cooperative" --treasurer {treasurer}')
    assert r.returncode != 0 and not data.exists() and not (tmp_path / "ayni-data").exists(), r.stderr
    # the guide's line (the owner is the test's user here: no `ayni` account on a test machine)
    subprocess.run(make_dir.group(1).replace(" -o ayni -g ayni", "").replace("/var/lib/ayni", str(data)).split(),
                   check=True, timeout=30)
    assert data.stat().st_mode & 0o777 == 0o700
    r = as_service(f'init --community "Our care cooperative" --treasurer {treasurer}')
    assert r.returncode == 0, r.stderr
    r = as_service("doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^OK +database: reachable, schema at head", r.stdout, re.M), r.stdout
    assert (data / "ayni.db").stat().st_mode & 0o077 == 0


# -- the federation gauges on a real remote payment -----------------------------------------


def test_pending_and_overdue_federation_legs_are_counted(pair, tmp_path):  # noqa: F811 - the imported fixture
    """A remote payment prepared and not yet decided is pending; past its deadline, overdue
    (what AyniFederationLegsOverdue fires on); once committed, neither."""
    import random

    from fastapi.testclient import TestClient

    from api.app import Settings, create_app
    a, b, clock = pair
    ally(a, b)
    app = create_app(a.ledger, Settings(secret_file=str(tmp_path / "session.key")))
    state = app.state.ctx.metrics.state

    def gauges(now_ms: int) -> dict[str, float]:
        state.clock = lambda: now_ms / 1000
        state._state_at = -1e18  # a fresh read (the 10 s cache is what a real scrape gets)
        text = TestClient(app).get("/metrics").text
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(ayni_federation_[a-z_]+) (\S+)$", text, re.M)}

    assert gauges(clock.now) == {"ayni_federation_legs_pending": 0, "ayni_federation_legs_overdue": 0}
    net = Net(a, b, random.Random(1))
    r = a.node.submit(*remote(a, "ana", b, "bea", 10))
    assert gauges(clock.now) == {"ayni_federation_legs_pending": 1, "ayni_federation_legs_overdue": 0}
    assert gauges(clock.now + 61_000) == {"ayni_federation_legs_pending": 1, "ayni_federation_legs_overdue": 1}
    net.send(r["outbox"])
    while net.bag:
        net.deliver(0)
    assert a.node.payment(r["paymentId"])["state"] == "committed"
    assert gauges(clock.now) == {"ayni_federation_legs_pending": 0, "ayni_federation_legs_overdue": 0}


def unit_settings(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_units_stop_retrying_config_errors_wait_for_serve_and_record_retention():
    """A configuration error must end as `failed`, not a restart loop forever; the anchorer must
    not open a database serve is still migrating; the retention job must not hang forever, and
    its success must land where /metrics reads it (AyniRetentionNotRun watches that)."""
    from api.metrics import retention_stamp_path
    for name in ("ayni-serve.service", "ayni-anchor.service"):
        u = unit_settings(name)
        assert u["StartLimitBurst"] == ["5"] and u["StartLimitIntervalSec"] == ["10min"], name
        assert u["RestartPreventExitStatus"] == ["2"], name
    anchor = unit_settings("ayni-anchor.service")
    assert any("127.0.0.1:8000/readyz" in pre for pre in anchor["ExecStartPre"])
    assert "127.0.0.1 --port 8000" in unit_settings("ayni-serve.service")["ExecStart"][0]
    retention = unit_settings("ayni-retention.service")
    assert retention["TimeoutStartSec"] == ["1h"]
    env = dict(line.split("=", 1) for line in (DEPLOY / "systemd" / "ayni.env").read_text().splitlines()
               if line and not line.startswith("#"))
    stamp = retention_stamp_path(env["AYNI_SESSION_KEY_FILE"])
    assert any(f"> {stamp}" in post and "date +%%s" in post for post in retention["ExecStartPost"]), stamp
