"""Every error the ledger can raise has a deliberate HTTP status: a new code must not fall
through to the 400 default (a server fault answered as a client fault, issue 13 defect 10)."""
from __future__ import annotations

import inspect

from api.errors import STATUS
from ledger.core import errors as E


def _codes():
    for _, cls in inspect.getmembers(E, inspect.isclass):
        if issubclass(cls, E.LedgerError) and cls is not E.LedgerError and "code" in cls.__dict__:
            yield cls.code


def test_every_ledger_error_code_has_an_http_status():
    missing = sorted(set(_codes()) - set(STATUS))
    assert not missing, f"add these codes to api.errors.STATUS: {missing}"


def test_server_side_faults_are_5xx():
    for code in ("integrity_violation", "insecure_storage", "unavailable", "not_initialised"):
        assert STATUS[code] >= 500
