"""ITI-67 search parameters: from a query string to a checked :class:`~record_service.registry.DocumentQuery`.

Every malformed parameter is a 400 naming it; nothing is guessed.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qsl

from record_service.codes import TYPE_CODES_BY_SYSTEM
from record_service.outcomes import ServiceError, invalid, required
from record_service.registry import DocumentQuery
from segur.identifiers import INS_SYSTEMS, RPPS_SYSTEM, is_valid_ins, is_valid_rpps

DEFAULT_COUNT = 20
MAX_COUNT = 100
STATUSES = ("current", "superseded")
_ALL_TYPE_CODES = frozenset().union(*TYPE_CODES_BY_SYSTEM.values())
_DAY_US = 86_400 * 1_000_000
# ASCII digits only, and few enough to fit a 64-bit column: str.isdigit() also accepts "²" (int() refuses it)
_DIGITS = re.compile(r"[0-9]{1,18}")
_STAMP = re.compile(r"-?[0-9]{1,18}")
_ID = re.compile(r"[0-9a-f]{1,32}")


class Parameters:
    """A query string's parameters, in order with repeats, read the way Starlette's ``QueryParams`` reads them.

    Parsed in one pass with no unquoting when nothing is escaped (the usual case): every search pays for
    this, and it costs a fifth of the general parser.
    """

    __slots__ = ("_items",)

    def __init__(self, query_string: bytes):
        text = query_string.decode("latin-1")
        if "%" in text or "+" in text:
            self._items = parse_qsl(text, keep_blank_values=True)
        else:
            self._items = [(name, value) for name, _, value in (p.partition("=") for p in text.split("&") if p)]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The last value given for ``name``."""
        found = default
        for key, value in self._items:
            if key == name:
                found = value
        return found

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._items if key == name]

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._items)


def patient_ins(params: Parameters) -> str:
    """The INS of ``patient.identifier=SYSTEM|INS``."""
    value = params.get("patient.identifier")
    if not value:
        raise required("patient.identifier")
    system, bar, ins = value.partition("|")
    if not bar:
        system, ins = "", value
    if system and system not in INS_SYSTEMS:
        raise invalid(f"patient.identifier system must be an INS system, not {system[:80]!r}", "patient.identifier",
                      reason="invalid-ins")
    if not is_valid_ins(ins):
        raise invalid(f"patient.identifier {ins[:40]!r} is not a valid INS", "patient.identifier", reason="invalid-ins")
    return ins


def count(params: Parameters) -> int:
    raw = params.get("_count")
    if raw is None:
        return DEFAULT_COUNT
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_COUNT:
        raise invalid(f"_count must be an integer from 1 to {MAX_COUNT}", "_count")
    return int(raw)


def _instant_bounds(raw: str) -> tuple[int, int]:
    """[first, last] microsecond covered by a FHIR date value (a day, or an instant)."""
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            return int(start.timestamp() * 1e6), int((start + timedelta(days=1)).timestamp() * 1e6) - 1
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        instant = int(moment.timestamp() * 1e6)
    except (ValueError, OverflowError):
        raise invalid(f"date {raw[:40]!r} is not YYYY-MM-DD or an ISO 8601 date-time", "date") from None
    return instant, instant


def _date_range(values: list[str]) -> tuple[int | None, int | None]:
    low: int | None = None
    high: int | None = None
    for value in values:
        prefix, raw = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
        first, last = _instant_bounds(raw)
        if prefix == "ge":
            low = first if low is None else max(low, first)
        elif prefix == "gt":
            low = last + 1 if low is None else max(low, last + 1)
        elif prefix == "le":
            high = last if high is None else min(high, last)
        elif prefix == "lt":
            high = first - 1 if high is None else min(high, first - 1)
        elif prefix == "eq":
            low = first if low is None else max(low, first)
            high = last if high is None else min(high, last)
        else:
            raise invalid(f"date prefix {prefix!r} is not supported (eq, ge, gt, le, lt)", "date")
    return low, high


def _type_codes(values: list[str]) -> tuple[str, ...]:
    codes: list[str] = []
    for value in values:
        for token in value.split(","):
            system, bar, code = token.partition("|")
            if not bar:
                system, code = "", token
            known = TYPE_CODES_BY_SYSTEM.get(system, frozenset()) if system else _ALL_TYPE_CODES
            if code not in known:
                raise ServiceError(400, "code-invalid", f"type {token[:80]!r} is not a known document type", "type",
                                   reason="unknown-type")
            codes.append(code)
    return tuple(codes)


def _author(value: str | None) -> str | None:
    if value is None:
        return None
    system, bar, identifier = value.partition("|")
    if not bar:
        system, identifier = "", value
    if system not in ("", RPPS_SYSTEM):
        raise invalid(f"author.identifier system must be {RPPS_SYSTEM}", "author.identifier")
    rpps = identifier[1:] if len(identifier) == 12 and identifier.startswith("8") else identifier
    if not is_valid_rpps(rpps):
        raise invalid(f"author.identifier {identifier[:40]!r} is not an RPPS or '8' + RPPS", "author.identifier")
    return rpps


def _keyset(value: str | None, first: re.Pattern, second: re.Pattern) -> tuple[str, str] | None:
    """The two parts of a ``first.second`` keyset cursor this service issued, each checked."""
    if value is None:
        return None
    head, _, tail = value.partition(".")
    if not first.fullmatch(head) or not second.fullmatch(tail):
        raise invalid("_cursor is not one this service issued", "_cursor")
    return head, tail


def _cursor(value: str | None) -> tuple[int, str] | None:
    parts = _keyset(value, _STAMP, _ID)
    return (int(parts[0]), parts[1]) if parts else None


def audit_cursor(value: str | None) -> tuple[int, int] | None:
    """The AuditEvent keyset cursor ``at_us.id`` of the last event sent."""
    parts = _keyset(value, _DIGITS, _DIGITS)
    return (int(parts[0]), int(parts[1])) if parts else None


def document_query(params: Parameters) -> DocumentQuery:
    statuses: list[str] = []
    for value in params.getlist("status"):
        for status in value.split(","):
            if status not in STATUSES and status != "entered-in-error":
                raise invalid(f"status {status[:40]!r} is not current, superseded or entered-in-error", "status")
            statuses.append(status)
    low, high = _date_range(params.getlist("date"))
    return DocumentQuery(
        patient_ins=patient_ins(params), statuses=tuple(statuses) or STATUSES,
        type_codes=_type_codes(params.getlist("type")), date_from_us=low, date_to_us=high,
        author_rpps=_author(params.get("author.identifier")), count=count(params),
        after=_cursor(params.get("_cursor")))


def cursor_token(date_us: int, doc_id: str) -> str:
    return f"{date_us}.{doc_id}"
