"""The layers stay apart (docs/layering.md says why each rule exists).

- The faces (api/, ledger/cli/, wallet_cli/) never talk to the store or SQL themselves.
- The wallet is a separate program: importing ALL of it loads no part of the server (store, service,
  chain writer, SQL, the HTTP app, the test chain). Checked in a fresh interpreter through sys.modules,
  so an indirect import through some helper module counts too.
- The pure core (ledger/core) imports only the standard library's non-I/O modules and a short list of
  pure libraries, and nothing of ledger outside the core.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ---- static import lists (every import statement, also those inside functions) ------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: str | None = None) -> set[str]:
    """Absolute names of every module a file imports, relative imports resolved against its package."""
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    package = package.split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def python_files(folder: str) -> list[Path]:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, folder
    return files


def offenders(folder: str, forbidden) -> dict[str, list[str]]:
    bad = {str(p.relative_to(ROOT)): sorted(m for m in imports_of(p) if under(m, forbidden))
           for p in python_files(folder)}
    return {k: v for k, v in bad.items() if v}


def test_the_import_walker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    # The walker is what the rules below stand on: show it finds what they look for.
    probe = tmp_path / "probe.py"
    probe.write_text("def late():\n    import sqlalchemy\n    from ..store import db\n    from . import fold\n")
    assert {"sqlalchemy", "ledger.store", "ledger.store.db", "ledger.core.fold"} <= imports_of(probe, "ledger.core")
    assert "ledger.core.records" in imports_of(ROOT / "ledger" / "core" / "fold.py")


# ---- (a) faces: no store, no SQL --------------------------------------------------------------

STORE = ("ledger.store", "sqlalchemy")


def test_the_http_face_does_not_import_the_store_or_sql():
    assert offenders("api", STORE) == {}


def test_the_server_cli_does_not_import_the_store_or_sql():
    # It may call the service (which owns the store); its own modules never reach past it.
    assert offenders("ledger/cli", STORE) == {}


def test_the_wallet_does_not_import_the_store_or_sql_itself():
    assert offenders("wallet_cli", STORE) == {}


# ---- (b) the wallet loads nothing of the server, even indirectly --------------------------------

SERVER = ("ledger.store", "ledger.service", "ledger.unit_of_work", "ledger.chain", "ledger.anchoring", "ledger.queries",
          "ledger.requests", "ledger.privacy",
          "sqlalchemy", "api", "eth_tester", "fastapi")


def modules_loaded_by(modules: list[str]) -> list[str]:
    """sys.modules after importing `modules` in a fresh interpreter (nothing else preloaded)."""
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_the_whole_wallet_loads_no_part_of_the_server():
    wallet = [module_name(p) for p in python_files("wallet_cli")]
    assert "wallet_cli.verify" in wallet and "wallet_cli.reconcile" in wallet
    loaded = modules_loaded_by(wallet)
    assert set(wallet) <= set(loaded)
    assert [m for m in loaded if under(m, SERVER)] == []


def test_the_sys_modules_check_can_fail():
    # The same probe on the server's service must see the store: the check above is not vacuous.
    loaded = modules_loaded_by(["ledger.service"])
    assert any(under(m, ("ledger.store",)) for m in loaded)


# ---- (c) the pure core -------------------------------------------------------------------------

# Standard-library modules the core may use: none of them does I/O (no files, sockets, processes, clock).
CORE_STDLIB = {"__future__", "bisect", "collections", "dataclasses", "enum", "functools", "hashlib", "hmac",
               "itertools", "json", "math", "operator", "re", "string", "typing", "unicodedata"}
CORE_STDLIB |= {"array"}  # typed arrays of numbers (the reconciler's entry times): no I/O
# Pure libraries: hashing, curve arithmetic, ABI encoding, JSON bytes. No I/O, no framework.
CORE_LIBRARIES = {"coincurve", "sha3", "Crypto", "eth_abi", "orjson"}


def test_the_core_imports_only_pure_modules():
    bad = {}
    for path in python_files("ledger/core"):
        for name in imports_of(path):
            top = name.split(".")[0]
            if name.startswith("ledger."):
                allowed = under(name, ("ledger.core",))
            else:
                allowed = top in CORE_STDLIB or top in CORE_LIBRARIES
            if not allowed:
                bad.setdefault(str(path.relative_to(ROOT)), []).append(name)
    assert bad == {}


def test_importing_the_core_loads_no_framework_or_io_library():
    core = [module_name(p) for p in python_files("ledger/core")]
    loaded = modules_loaded_by(core)
    forbidden = ("sqlalchemy", "fastapi", "starlette", "httpx", "requests", "web3", "typer", "click",
                 "eth_tester", "ledger.store", "ledger.service", "api", "wallet_cli")
    assert [m for m in loaded if under(m, forbidden)] == []


# ---- entry kinds are dispatched in one place -----------------------------------------------------

def kind_strings(path: Path) -> list[str]:
    from ledger.core.vocab import KINDS
    return [f"{node.lineno}: {node.value}" for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
            if isinstance(node, ast.Constant) and node.value in KINDS]


def test_the_wallet_and_the_http_face_spell_no_entry_kind():
    # The fold (ledger/core/fold.py REGISTRY) turns a kind into a typed record; the faces work on
    # records (or ledger.core.vocab.Kind), so a new kind never needs an edit in a face.
    bad = {str(p.relative_to(ROOT)): kind_strings(p) for folder in ("wallet_cli", "api") for p in python_files(folder)}
    assert {k: v for k, v in bad.items() if v} == {}
