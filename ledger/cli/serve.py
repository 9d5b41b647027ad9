"""`ayni serve`: the HTTP API and the member web app, optionally anchoring and applying
retention in the background."""
from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import typer

from ..core.addresses import normalize_address
from ..core.text import visible
from .anchoring import CHAIN_HELP, CONTRACT_HELP, KEYSTORE_HELP, PASSWORD_HELP, anchor_settings_from_env, connect_chain
from .options import Db, open_ledger, persistent_url, say


def _note(message: str) -> None:
    typer.secho(visible(message), fg="yellow", err=True)  # a chain node's or the database's words


DEFAULT_SESSION_KEY_FILE = "ayni-data/session.key"


def prepare_session_key_dir() -> Path:
    """The folder of the API's token secret ($AYNI_SESSION_KEY_FILE, default ./ayni-data/session.key):
    created 0700 here, before any worker makes it with the default mode, because whoever can
    replace the key can mint sign-in tokens. An existing folder group or others can enter is
    only warned about: it may be shared on purpose, and the key file itself is refused unless 0600."""
    key_file = Path(os.environ.setdefault("AYNI_SESSION_KEY_FILE", DEFAULT_SESSION_KEY_FILE))
    folder = key_file.parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        folder.chmod(0o700)  # mkdir's mode is filtered by the umask; say it exactly
    elif stat.S_IMODE(folder.stat().st_mode) & (stat.S_IRWXG | stat.S_IRWXO):
        _note(f"warning: {folder} (holding the token secret {key_file.name}) is accessible to group or "
              f"others (mode {stat.S_IMODE(folder.stat().st_mode):04o}); consider chmod 700 {folder}")
    return key_file


def serve(db: Db = None,
          host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
          port: int = typer.Option(8000, min=1, max=65535),
          workers: int = typer.Option(1, min=1, max=64, help="Worker processes (PostgreSQL for more than one)"),
          public_uri: str = typer.Option(None, help="Public base URL members sign in to (SIWE); default http://HOST:PORT"),
          contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP),
          anchor_every: float = typer.Option(0, min=0, help="Anchor automatically every this many seconds "
                                             "(0: off); needs --chain/--keystore as for `ayni anchor`"),
          anchor_min_entries: int = typer.Option(1, min=1, help="...or only once this many entries wait"),
          chain: str = typer.Option(None, "--chain", envvar="AYNI_CHAIN_URL", help=CHAIN_HELP),
          keystore: Path = typer.Option(None, envvar="AYNI_ANCHOR_KEYSTORE", help=KEYSTORE_HELP),
          password_file: Path = typer.Option(None, help=PASSWORD_HELP),
          retention_every: float = typer.Option(0, min=0, help="Run the declared retention (erase old memos, "
                                                "closed accounts' profiles) every this many seconds (0: off)"),
          forwarded_allow_ips: str = typer.Option(None, envvar="AYNI_FORWARDED_ALLOW_IPS", help=(
              "Comma-separated proxy addresses whose X-Forwarded-For/-Proto are believed (e.g. 127.0.0.1 "
              "for a TLS proxy such as Caddy on this host). Default: none, so a client cannot pick the "
              "address its rate limits are counted under")),
          node_keystore: Path = typer.Option(None, envvar="AYNI_NODE_KEYSTORE", help="Encrypted keystore of "
                                             "this node's federation key (`ayni federation new-key`): takes "
                                             "part in alliances and drives remote payments"),
          node_password_file: Path = typer.Option(None, help="File holding the node keystore passphrase "
                                                  "(else $AYNI_NODE_PASSWORD, else a hidden prompt)"),
          node_url: str = typer.Option(None, envvar="AYNI_NODE_URL", help="URL allied nodes reach this node at "
                                       "(default: the public URI)"),
          federation_timeout_ms: int = typer.Option(60_000, min=1000, envvar="AYNI_FEDERATION_TIMEOUT_MS",
                                                    help="A remote payment commits within this long of being "
                                                    "prepared, or aborts"),
          federation_retry_ms: int = typer.Option(2_000, min=50, envvar="AYNI_FEDERATION_RETRY_MS",
                                                  help="Re-send interval of protocol messages")
          ) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json) and the member web app at /.

    Optionally anchors (--anchor-every) and applies retention (--retention-every) in the background."""
    import uvicorn
    ledger = open_ledger(persistent_url(db), migrate=True)  # migrate once, before workers start
    if anchor_every:
        # One anchorer for the whole server, in this (parent) process: workers never race
        # to anchor, and a slow or dead chain never touches a request.
        from ..anchoring import Anchoring, watch
        anchor_chain = connect_chain(chain, keystore, password_file, contract)
        # $AYNI_CHAIN_PRESET, $AYNI_MAX_FEE_GWEI, $AYNI_PRIORITY_FEE_GWEI as for `ayni anchor`
        job = Anchoring(ledger, anchor_chain, **anchor_settings_from_env(anchor_chain))
        threading.Thread(target=watch, daemon=True, name="ayni-anchorer", kwargs=dict(
            job=job, interval=anchor_every, min_entries=anchor_min_entries, stop=threading.Event(),
            on_report=lambda r: [say(f"anchored through seq {r.anchored_through} ({r.confirmed} batches)", err=True),
                                 *(_note(f"anchoring: {w}") for w in [r.postponed, *r.warnings] if w)],
            on_error=lambda m: _note(f"anchoring: {m}"))).start()
    if retention_every:
        from ..privacy import retention
        threading.Thread(target=retention.watch, daemon=True, name="ayni-retention", kwargs=dict(
            ledger=ledger, every_s=retention_every, stop=threading.Event(),
            on_error=lambda m: _note(f"retention: {m}"))).start()
    if workers > 1 and db.startswith("sqlite"):
        _note("note: several workers on SQLite serialise on one file; PostgreSQL is the production path")
    uri = public_uri or f"http://{host}:{port}"
    prepare_session_key_dir()
    if node_keystore is not None:
        from .federation import start_driver
        start_driver(ledger, node_keystore, node_password_file, node_url or uri,
                     timeout_ms=federation_timeout_ms, retry_ms=federation_retry_ms)
    os.environ.update({"AYNI_DB_URL": db, "AYNI_PUBLIC_URI": uri,
                       "AYNI_PUBLIC_HOST": uri.split("://", 1)[-1].rstrip("/")})
    if contract:
        os.environ["AYNI_ANCHOR_CONTRACT"] = normalize_address(contract, what="contract")
    if workers > 1:
        _metrics_dir()
    # uvicorn would trust forwarded headers from 127.0.0.1 by default: only when asked to here
    uvicorn.run("api.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False, proxy_headers=bool(forwarded_allow_ips),
                forwarded_allow_ips=forwarded_allow_ips or None)


def _metrics_dir() -> None:
    """Several workers answer one scrape target: each writes its counters' snapshot into one folder
    and whichever worker answers /metrics sums them (api/metrics.py says why). $AYNI_METRICS_DIR
    when set (its old snapshots are removed: a restart restarts the counters, which Prometheus
    reads as one reset), else a fresh private folder removed at exit."""
    import atexit
    import shutil
    import tempfile
    given = os.environ.get("AYNI_METRICS_DIR")
    if given:
        folder = Path(given)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for old in folder.glob("worker-*.json*"):
            old.unlink(missing_ok=True)
        return
    folder = tempfile.mkdtemp(prefix="ayni-metrics-")
    os.environ["AYNI_METRICS_DIR"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
