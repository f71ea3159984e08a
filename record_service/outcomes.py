"""FHIR OperationOutcome errors: every refusal the service makes, with its HTTP status and the field at fault.

Handlers raise :class:`ServiceError`; the app turns it into a JSON OperationOutcome. Nothing is stored
by a request that ends in one (they are raised before any write, or inside a rolled-back savepoint).
"""

from __future__ import annotations

import errno
import sqlite3
import sys

import orjson


class ServiceError(Exception):
    """A refusal: ``status`` is the HTTP status, ``code`` the FHIR issue type, ``where`` the field at fault."""

    def __init__(self, status: int, code: str, message: str, where: str | None = None,
                 reason: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.where = where
        self.reason = reason or code  # the rejection label used in metrics
        self.headers = headers or {}

    def outcome(self) -> dict:
        return operation_outcome(self.code, self.message, self.where)


def operation_outcome(code: str, message: str, where: str | None = None, severity: str = "error") -> dict:
    issue: dict = {"severity": severity, "code": code, "diagnostics": message}
    if where:
        issue["expression"] = [where]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_bytes(code: str, message: str, where: str | None = None) -> bytes:
    return orjson.dumps(operation_outcome(code, message, where))


# Shorthands for the common classes of refusal.

def invalid(message: str, where: str | None = None, reason: str = "invalid") -> ServiceError:
    return ServiceError(400, "invalid", message, where, reason)


def required(where: str) -> ServiceError:
    return ServiceError(400, "required", f"{where} is required", where, "missing-metadata")


def forbidden(message: str, reason: str = "forbidden") -> ServiceError:
    return ServiceError(403, "forbidden", message, reason=reason)


def not_found(message: str) -> ServiceError:
    return ServiceError(404, "not-found", message, reason="not-found")


def conflict(message: str, where: str | None = None) -> ServiceError:
    return ServiceError(409, "conflict", message, where, "conflict")


def unauthenticated(message: str) -> ServiceError:
    return ServiceError(401, "login", message, reason="unauthenticated",
                        headers={"WWW-Authenticate": 'Bearer realm="segur"'})


def unavailable(message: str) -> ServiceError:
    """Storage could not make the request durable: nothing of it was kept, retry after a second."""
    return ServiceError(503, "transient", message, reason="storage", headers={"Retry-After": "1"})


def insufficient_storage(message: str) -> ServiceError:
    """The disk is full (507, RFC 4918): nothing of the request was kept; retry once space is freed."""
    return ServiceError(507, "transient", message, reason="disk-full", headers={"Retry-After": "10"})


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13  # SQLITE_FULL, "database or disk is full" (primary result code)
_SQLITE_FAULTS = frozenset({5, 6, 8, 10, 11, 13, 14, 15, 26})  # BUSY LOCKED READONLY IOERR CORRUPT FULL CANTOPEN PROTOCOL NOTADB
_PG_DISK_FULL = "53100"  # disk_full


def storage_fault(error: BaseException) -> ServiceError | None:
    """The answer to an error raised by the storage underneath, or None if ``error`` is not one (a bug).

    - 507 Insufficient Storage for a full disk: ``OSError`` ENOSPC or EDQUOT, SQLite's ``SQLITE_FULL``,
      PostgreSQL's SQLSTATE 53100 (disk_full);
    - 503 with ``Retry-After`` for anything else that breaks underneath and may clear by itself: any other
      ``OSError`` (EIO, EMFILE, EROFS…), SQLite's operational errors (busy, locked, I/O, cannot open…),
      psycopg's ``OperationalError`` (server restarting or unreachable, connection lost, the pool's
      ``PoolTimeout``) and ``InterfaceError`` (a connection already closed).
    Sources: errno(3); https://www.sqlite.org/rescode.html; PostgreSQL's appendix A (error codes);
    psycopg 3's exception hierarchy (DB-API 2.0, PEP 249).
    """
    if isinstance(error, ServiceError):
        return None
    if isinstance(error, OSError):
        if error.errno in _DISK_FULL_ERRNOS:
            return insufficient_storage(f"the service's disk is full: {error.strerror}")
        return unavailable(f"storage unavailable: {error.strerror or error}")
    if isinstance(error, sqlite3.Error):
        code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
        if code == _SQLITE_FULL:
            return insufficient_storage(f"the service's disk is full: {error}")
        if isinstance(error, sqlite3.OperationalError) or code in _SQLITE_FAULTS:
            return unavailable(f"storage unavailable: {error}")
        return None
    psycopg = sys.modules.get("psycopg")  # loaded only by the PostgreSQL back end
    if psycopg is not None and isinstance(error, psycopg.Error):
        if getattr(error, "sqlstate", None) == _PG_DISK_FULL:
            return insufficient_storage(f"the database's disk is full: {error}")
        if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)):
            return unavailable(f"database unavailable: {str(error).strip()[:200]}")
    return None


def as_storage_fault(error: BaseException) -> BaseException:
    """``error`` as its :func:`storage_fault` answer if it is one, else ``error`` itself (to raise)."""
    return storage_fault(error) or error
