"""Storage faults as the faces see them: which exceptions mean "the database failed", and the
LedgerError each becomes (a lost or switching server: StoreConnectionLost, 503 + Retry-After).
The faces import this, never ledger.store or the driver: which driver raises what is the store's
business (docs/layering.md)."""
from __future__ import annotations

from .core.errors import LedgerError


def storage_fault_types() -> tuple[type[BaseException], ...]:
    """The exception classes a database driver or SQLAlchemy raises."""
    from sqlalchemy.exc import SQLAlchemyError

    from .store.errors import _DRIVER_ERRORS
    return (SQLAlchemyError, *_DRIVER_ERRORS)


def as_ledger_error(exc: BaseException) -> LedgerError | None:
    """The LedgerError a storage fault means, or None when `exc` is not one."""
    from .store.errors import as_domain_error
    return as_domain_error(exc)
