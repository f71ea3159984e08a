"""Query-string parameters of the service's searches, and the checks the searches share.

Every malformed parameter is a 400 naming it; nothing is guessed. The DocumentReference search (ITI-67)
itself is :mod:`~record_service.document_search`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from record_service.outcomes import invalid, required
from segur.identifiers import INS_SYSTEMS, is_valid_ins

DEFAULT_COUNT = 20
MAX_COUNT = 100
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
    """The INS of ``patient.identifier=SYSTEM|INS`` (or a bare INS)."""
    value = params.get("patient.identifier")
    if not value:
        raise required("patient.identifier")
    system, bar, ins = value.partition("|")
    return checked_ins(system if bar else None, ins if bar else value, "patient.identifier")


def checked_ins(system: str | None, ins: str | None, name: str) -> str:
    """``ins`` when it is a valid INS and ``system`` (if given) an INS system; a 400 naming ``name`` otherwise."""
    if system and system not in INS_SYSTEMS:
        raise invalid(f"{name} system must be an INS system, not {system[:80]!r}", name, reason="invalid-ins")
    if ins is None:
        raise invalid(f"{name}: a search names one patient (an INS), not a whole system", name, reason="invalid-ins")
    if not is_valid_ins(ins):
        raise invalid(f"{name} {ins[:40]!r} is not a valid INS", name, reason="invalid-ins")
    return ins


def count(params: Parameters) -> int:
    """An access-history page's size: ``_count`` from 1 to :data:`MAX_COUNT` (default :data:`DEFAULT_COUNT`)."""
    raw = params.get("_count")
    if raw is None:
        return DEFAULT_COUNT
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_COUNT:
        raise invalid(f"_count must be an integer from 1 to {MAX_COUNT}", "_count")
    return int(raw)


def prefers_strict(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header asks ``handling=strict`` (FHIR R4 search.html#errors: refuse, with a 400,
    a parameter the server does not support, instead of ignoring it)."""
    if not prefer:
        return False
    return any(part.strip().lower().replace(" ", "") == "handling=strict"
               for part in prefer.replace(";", ",").split(","))


def document_cursor(value: str) -> tuple[int, str]:
    """The DocumentReference keyset cursor ``date_us.id`` of the last document sent."""
    parts = _keyset(value, _STAMP, _ID)
    return int(parts[0]), parts[1]


def _keyset(value: str | None, first: re.Pattern, second: re.Pattern) -> tuple[str, str] | None:
    """The two parts of a ``first.second`` keyset cursor this service issued, each checked."""
    if value is None:
        return None
    head, _, tail = value.partition(".")
    if not first.fullmatch(head) or not second.fullmatch(tail):
        raise invalid("_cursor is not one this service issued", "_cursor")
    return head, tail


def audit_cursor(value: str | None) -> tuple[int, int] | None:
    """The AuditEvent keyset cursor ``at_us.id`` of the last event sent."""
    parts = _keyset(value, _DIGITS, _DIGITS)
    return (int(parts[0]), int(parts[1])) if parts else None


def cursor_token(date_us: int, doc_id: str) -> str:
    return f"{date_us}.{doc_id}"
