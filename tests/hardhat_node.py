"""A real Hardhat JSON-RPC node for tests: `npx hardhat node` on 127.0.0.1 and a free port.

    with hardhat_node() as url:        # "http://127.0.0.1:PORT"
        ...

The node runs in its own process group (start_new_session) and the whole group is always
killed on exit (SIGTERM, then SIGKILL), even when the body raises or the start-up times out.
Chain id 31337; the well-known dev accounts are funded (HARDHAT_KEYS below).

Loopback only: the node listens on 127.0.0.1 (Hardhat announces 0.0.0.0 by default).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Hardhat's deterministic dev accounts #0 and #1 (public test keys, funded with 10,000 ETH).
HARDHAT_KEYS = [
    bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
    bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"),
]
HARDHAT_CHAIN_ID = 31337


class HardhatNodeError(RuntimeError):
    pass


class NodeURL(str):
    """The node's URL (a plain str) that also carries the id of its process group."""

    pgid: int


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc(url: str, method: str, params: list | None = None, timeout: float = 2.0):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())["result"]


def _kill_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group we created (its id is the child's pid), SIGKILL what is left
    after `grace` seconds; reap our child so no zombie keeps the group id alive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reap the direct child once it exits
            if proc.returncode is not None and not group_alive(proc.pid):
                return
            time.sleep(0.05)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def hardhat_node(*, port: int | None = None, start_timeout: float = 60.0) -> Iterator[NodeURL]:
    """Start `npx hardhat node --hostname 127.0.0.1 --port PORT` from the repo root, wait until
    JSON-RPC answers (eth_chainId), yield the URL; always kill the process group."""
    npx = shutil.which("npx")
    if npx is None:
        raise HardhatNodeError("npx not found (Node.js is required for the Hardhat node)")
    if not (ROOT / "node_modules" / "hardhat").is_dir():
        raise HardhatNodeError("node_modules/hardhat missing: run `npm ci` in the repo root")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="hardhat-node-", suffix=".log", delete=False)
    env = dict(os.environ, HARDHAT_DISABLE_TELEMETRY_PROMPT="true", NO_COLOR="1")
    proc = subprocess.Popen(
        [npx, "--no-install", "hardhat", "node", "--hostname", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise HardhatNodeError(f"hardhat node exited with {proc.returncode}: {_tail(log.name)}")
            try:
                chain_id = int(rpc(url, "eth_chainId", timeout=1.0), 16)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, KeyError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise HardhatNodeError(f"hardhat node did not answer on {url} within {start_timeout}s: {_tail(log.name)}")
            time.sleep(0.1)
        if chain_id != HARDHAT_CHAIN_ID:
            raise HardhatNodeError(f"unexpected chain id {chain_id} on {url}")
        node_url = NodeURL(url)
        node_url.pgid = proc.pid
        yield node_url
    finally:
        _kill_group(proc)
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log.name)


def _tail(path: str, n: int = 2000) -> str:
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"
