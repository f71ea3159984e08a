"""FHIR OperationOutcome errors: every refusal the service makes, with its HTTP status and the field at fault.

Handlers raise :class:`ServiceError`; the app turns it into a JSON OperationOutcome. Nothing is stored
by a request that ends in one (they are raised before any write, or inside a rolled-back savepoint).
"""

from __future__ import annotations

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
