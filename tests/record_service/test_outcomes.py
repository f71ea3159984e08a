"""outcomes.storage_fault: which errors of the storage underneath answer 507, which 503, which are bugs."""

from __future__ import annotations

import errno
import sqlite3

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from record_service.outcomes import as_storage_fault, conflict, storage_fault


def _sqlite_error(kind: type, code: int) -> sqlite3.Error:
    error = kind("message")
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize("error, status", [
    (OSError(errno.ENOSPC, "No space left on device"), 507),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), 507),
    (OSError(errno.EIO, "Input/output error"), 503),
    (OSError(errno.EMFILE, "Too many open files"), 503),
    (FileExistsError(errno.EEXIST, "File exists"), 503),
    (_sqlite_error(sqlite3.OperationalError, 13), 507),  # SQLITE_FULL
    (_sqlite_error(sqlite3.OperationalError, 5), 503),  # SQLITE_BUSY: locked for longer than busy_timeout
    (_sqlite_error(sqlite3.OperationalError, 10 | (3 << 8)), 503),  # SQLITE_IOERR_WRITE
    (_sqlite_error(sqlite3.DatabaseError, 11), 503),  # SQLITE_CORRUPT
    (psycopg.errors.DiskFull("could not extend file"), 507),
    (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), 503),
    (psycopg.OperationalError("connection failed: Connection refused"), 503),
    (psycopg.InterfaceError("the connection is closed"), 503),
    (PoolTimeout("couldn't get a connection after 5.00 sec"), 503),
])
def test_storage_errors_answer_503_with_retry_after_or_507(error, status):
    fault = storage_fault(error)
    assert fault is not None and fault.status == status
    assert int(fault.headers["Retry-After"]) >= 1
    assert fault.outcome()["issue"][0]["code"] == "transient"
    assert as_storage_fault(error) is not error


@pytest.mark.parametrize("error", [
    ValueError("a bug"), KeyError("a bug"), _sqlite_error(sqlite3.IntegrityError, 19),
    _sqlite_error(sqlite3.ProgrammingError, 21), psycopg.errors.UndefinedColumn("no such column"),
    conflict("a refusal is not a fault"),
])
def test_bugs_and_refusals_are_not_storage_faults(error):
    assert storage_fault(error) is None
    assert as_storage_fault(error) is error
