"""The HTTP face holds no SQL (docs/design: faces call use cases, never the store)."""
from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).resolve().parents[1] / "api"
FORBIDDEN = ("ledger.store", "sqlalchemy")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_api_module_imports_the_store_or_sqlalchemy():
    modules = sorted(API.rglob("*.py"))
    assert len(modules) >= 10  # the routers are there
    bad = {str(p.relative_to(API.parent)): sorted(m for m in imported_modules(p)
                                                   if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
           for p in modules}
    assert {k: v for k, v in bad.items() if v} == {}
