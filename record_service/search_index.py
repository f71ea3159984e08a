"""What a deposited DocumentReference is found by: its search values, written once at deposit.

Token parameters go to ``document_tokens`` (one row per system and code), date parameters to
``document_dates`` (one range per value, microseconds, ends inclusive; see :mod:`search_dates`). Each
parameter's FHIR path (FHIR R4 DocumentReference search parameters; ``creation`` from IHE MHD ITI-67):

| parameter | path |
|---|---|
| category | DocumentReference.category |
| event | DocumentReference.context.event |
| facility | DocumentReference.context.facilityType |
| format | DocumentReference.content.format |
| identifier | DocumentReference.masterIdentifier, DocumentReference.identifier |
| relatesto | DocumentReference.relatesTo.target (the id it names) |
| relatesto:identifier | DocumentReference.relatesTo.target.identifier |
| security-label | DocumentReference.securityLabel, but the patient's mask (read live from ``documents.masked``) |
| setting | DocumentReference.context.practiceSetting |
| type | DocumentReference.type (the first known type code is also ``documents.type_code``) |
| period | DocumentReference.context.period |
| creation | DocumentReference.content.attachment.creation |

Status, date, author and patient are columns of ``documents`` (they change, or every find reads them).
Nothing here refuses a deposit: a value of the wrong shape is simply not indexed (the deposit's own
checks decide what is refused).
"""

from __future__ import annotations

from collections.abc import Iterator

from record_service.codes import MASKED_FROM_PROFESSIONALS, VISIBILITY_SYSTEM
from record_service.committer import WriteTransaction
from record_service.search_dates import EARLIEST, LATEST, value_range

_MAX_VALUE = 512  # longer systems or codes are not indexed (no search could name them usefully)
_ROWS_A_STATEMENT = 200  # 800 placeholders: far below SQLite's and PostgreSQL's limits


def index_search_values(tx: WriteTransaction, document_id: str, resource: dict, replaces: str | None) -> None:
    """Write the search values of one new DocumentReference (``replaces``: the id it replaces, if any)."""
    tokens = sorted(set(tokens_of(resource, replaces)))
    for start in range(0, len(tokens), _ROWS_A_STATEMENT):
        rows = tokens[start:start + _ROWS_A_STATEMENT]
        tx.execute("INSERT INTO document_tokens (document_id, parameter, system, code) VALUES "
                   + ",".join(["(?, ?, ?, ?)"] * len(rows)), [v for row in rows for v in (document_id, *row)])
    dates = sorted(set(dates_of(resource)))
    for start in range(0, len(dates), _ROWS_A_STATEMENT):
        rows = dates[start:start + _ROWS_A_STATEMENT]
        tx.execute("INSERT INTO document_dates (document_id, parameter, low_us, high_us) VALUES "
                   + ",".join(["(?, ?, ?, ?)"] * len(rows)), [v for row in rows for v in (document_id, *row)])


def tokens_of(resource: dict, replaces: str | None) -> Iterator[tuple[str, str, str]]:
    """(parameter, system, code) of every token value; a missing system is ''."""
    context = _dict(resource.get("context"))
    yield from _concepts("category", resource.get("category"))
    yield from _concepts("type", [resource.get("type")])
    yield from _concepts("event", context.get("event"))
    yield from _concepts("facility", [context.get("facilityType")])
    yield from _concepts("setting", [context.get("practiceSetting")])
    for parameter, system, code in _concepts("security-label", resource.get("securityLabel")):
        if (system, code) != (VISIBILITY_SYSTEM, MASKED_FROM_PROFESSIONALS):  # live: documents.masked
            yield parameter, system, code
    for content in _list(resource.get("content")):
        yield from _codings("format", [_dict(content).get("format")])
    for identifier in [resource.get("masterIdentifier"), *_list(resource.get("identifier"))]:
        yield from _identifier("identifier", identifier)
    for relation in _list(resource.get("relatesTo")):
        target = _dict(_dict(relation).get("target"))
        reference = target.get("reference")
        if isinstance(reference, str) and 0 < len(reference) <= _MAX_VALUE:
            yield "relatesto", "", reference.rstrip("/").rpartition("/")[2]
        yield from _identifier("relatesto:identifier", target.get("identifier"))
    if replaces:
        yield "relatesto", "", replaces


def dates_of(resource: dict) -> Iterator[tuple[str, int, int]]:
    """(parameter, first µs, last µs) of every date value."""
    period = _dict(_dict(resource.get("context")).get("period"))
    start, end = _range(period.get("start")), _range(period.get("end"))
    if start or end:
        yield "period", start[0] if start else EARLIEST, end[1] if end else LATEST
    for content in _list(resource.get("content")):
        creation = _range(_dict(_dict(content).get("attachment")).get("creation"))
        if creation:
            yield "creation", *creation


def _range(value: object) -> tuple[int, int] | None:
    return value_range(value) if isinstance(value, str) else None


def _concepts(parameter: str, concepts: object) -> Iterator[tuple[str, str, str]]:
    for concept in _list(concepts):
        yield from _codings(parameter, _dict(concept).get("coding"))


def _codings(parameter: str, codings: object) -> Iterator[tuple[str, str, str]]:
    for coding in _list(codings):
        coding = _dict(coding)
        yield from _token(parameter, coding.get("system"), coding.get("code"))


def _identifier(parameter: str, identifier: object) -> Iterator[tuple[str, str, str]]:
    identifier = _dict(identifier)
    yield from _token(parameter, identifier.get("system"), identifier.get("value"))


def _token(parameter: str, system: object, code: object) -> Iterator[tuple[str, str, str]]:
    system = system if system is not None else ""
    if isinstance(system, str) and isinstance(code, str) and code and len(system) <= _MAX_VALUE \
            and len(code) <= _MAX_VALUE:
        yield parameter, system, code


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list:
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []
