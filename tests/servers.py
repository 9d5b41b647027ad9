"""Starting a real `ayni serve` for tests and benchmarks: one free port, one wait for /readyz.

`wait_ready` sleeps between polls whatever the answer (a 503 while migrations or the pool warm
up is answered quickly; polling it in a tight loop would only burn the CPU the server needs),
stops at a deadline, and stops at once if the server process has exited."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import httpx

POLL_S = 0.1


class ServerNotReady(RuntimeError):
    """`ayni serve` exited, or did not answer /readyz with 200 before the deadline."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict:
    """The environment without any AYNI_ setting of the caller's (tests pass their own)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}, **extra}


def wait_ready(base: str, proc: subprocess.Popen | None = None, *, timeout: float = 60.0,
               interval: float = POLL_S) -> float:
    """Poll `base`/readyz until it answers 200; the seconds that took. Raises ServerNotReady
    (with the last status or error seen) if `proc` exits or `timeout` passes first."""
    started = time.monotonic()
    deadline = started + timeout
    last = "no answer yet"
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServerNotReady(f"ayni serve exited with status {proc.returncode} before it was ready")
        try:
            status = httpx.get(f"{base}/readyz", timeout=min(2.0, max(0.1, deadline - time.monotonic()))).status_code
            if status == 200:
                return time.monotonic() - started
            last = f"/readyz answered {status}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() + interval > deadline:
            raise ServerNotReady(f"ayni serve was not ready after {timeout:g} s ({last})")
        time.sleep(interval)


def stop_group(proc: subprocess.Popen, *, timeout: float = 20.0) -> None:
    """SIGTERM the server's process group (master and workers), SIGKILL if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
    try:  # stragglers of the group (workers outliving the master)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
