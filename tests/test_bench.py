"""`ayni bench` refuses what it cannot run with one line and exit status 2 (it runs nothing)."""
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("args, message", [
    (["--scale", "huge"], "--scale must be small or full"),
    (["--only", "nosuch"], "no such benchmark: nosuch"),
])
def test_bench_bad_input_is_one_line(tmp_path, args, message):
    r = subprocess.run([str(BIN / "ayni"), "bench", *args, "--out", str(tmp_path / "out")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
