"""ITI-67 (the DMP's TD3.1a): a DocumentReference search's parameters, checked, as a :class:`DocumentSearch`.

FHIR R4 search semantics (search.html): a repeated parameter is AND, a comma list is OR; dates are
ranges at any precision with every prefix (:mod:`search_dates`); tokens are ``code``, ``system|code``,
``|code`` or ``system|``, with ``:not`` and ``:missing``. A parameter this service does not support (or an
empty value) is left out of the search and of its self link, or refused (400 naming it) when the client
asks ``Prefer: handling=strict``; a modifier it does not support is always refused (400), and so is a
malformed value of a parameter it supports. ``_count`` is clamped to [0, :data:`MAX_COUNT`]; ``_count=0``
and ``_summary=count`` answer only ``Bundle.total``; ``_total=accurate|estimate`` adds it to a page.
"""

from __future__ import annotations

import re

from collections.abc import Callable
from urllib.parse import quote, urlencode

from record_service import search_filters as sf
from record_service.codes import MASKED_FROM_PROFESSIONALS, TYPE_CODES_BY_SYSTEM, VISIBILITY_SYSTEM
from record_service.outcomes import ServiceError, invalid, required
from record_service.registry import DocumentQuery
from record_service.search_dates import now_us
from record_service.searches import DEFAULT_COUNT, MAX_COUNT, Parameters, checked_ins, document_cursor
from segur.identifiers import (FINESS_SYSTEM, FINESS_SYSTEMS, IDNAT_STRUCT_SYSTEM, RPPS_SYSTEM, is_valid_finess,
                               is_valid_rpps)

STATUSES = ("current", "superseded")  # what a search without ``status`` finds
STATUS_SYSTEM = "http://hl7.org/fhir/document-reference-status"
_ALL_STATUSES = ("current", "superseded", "entered-in-error")
_ALL_TYPE_CODES = frozenset().union(*TYPE_CODES_BY_SYSTEM.values())
_RESULT_PARAMETERS = ("_count", "_total", "_summary", "_cursor")


class DocumentSearch:
    """A checked search: the registry ``query``, and how to answer it.

    ``as_given``: every parameter was applied as written, so the request's own query string is the self
    link; ``total``: Bundle.total is asked; ``entries``: False when only the total is (``_summary=count``,
    ``_count=0``). Built on every find: a plain class, the applied parameters put together only if a link
    needs them.
    """

    __slots__ = ("query", "as_given", "total", "entries", "_filters", "_results")

    def __init__(self, query: DocumentQuery, as_given: bool, total: bool, entries: bool,
                 filters: list[tuple[str, str]], results: dict[str, str]):
        self.query, self.as_given, self.total, self.entries = query, as_given, total, entries
        self._filters, self._results = filters, results

    @property
    def applied(self) -> list[tuple[str, str]]:
        """The parameters applied, as the self link states them: the filters in order, then the result ones."""
        return self._filters + [(name, self._results[name]) for name in _RESULT_PARAMETERS if name in self._results]

    def self_query(self) -> str:
        return _encoded(self.applied)

    def next_query(self, cursor: str) -> str:
        return _encoded([*(p for p in self.applied if p[0] != "_cursor"), ("_cursor", cursor)])


MAX_VALUES = 100  # values in one search: each is a condition on every row of the record (a 400 above)
_CONTROL = re.compile("[\x00-\x1f\x7f]")  # FHIR strings: no character below U+0020 but tab, CR, LF in text


def _encoded(pairs) -> str:
    return urlencode(list(pairs), quote_via=quote, safe=":|,/")


class _Builder:
    """The state of a search while its parameters are read, in order."""

    def __init__(self, strict: bool):
        self.strict = strict
        self._now: int | None = None
        self.patient: str | None = None
        self.no_match = False  # e.g. two different patients ANDed
        self.statuses: set[str] | None = None
        self.filters: list[sf.Condition] = []
        self.applied: list[tuple[str, str]] = []
        self.results: dict[str, str] = {}  # result parameters, the last of each
        self.after: tuple[int, str] | None = None  # the keyset cursor
        self.as_given = True
        self.values = 0  # values given so far, each item of a comma list counted

    def add(self, name: str, value: str) -> None:
        if _CONTROL.search(value) or _CONTROL.search(name):
            raise invalid(f"search parameter {name[:80]!r}: a FHIR string has no control characters", name[:80])
        self.values += value.count(",") + 1
        if self.values > MAX_VALUES:
            raise ServiceError(400, "too-costly", f"a search gives at most {MAX_VALUES} values (parameters and comma"
                               " lists together)", name[:80], reason="too-costly")
        base, _, modifier = name.partition(":")
        handler = _HANDLERS.get(base)
        applied = handler(self, name, modifier, value) if handler is not None and value else None
        if applied is None:
            self._left_out(name)
        elif base in _RESULT_PARAMETERS:
            self.as_given &= base not in self.results and applied == value
            self.results[base] = applied
        else:
            self.as_given &= applied == value
            self.applied.append((name, applied))

    @property
    def now(self) -> int:
        """The time the search is made at (µs), for ``ap`` (read once, and only if needed)."""
        if self._now is None:
            self._now = now_us()
        return self._now

    def _left_out(self, name: str) -> None:
        if self.strict:
            raise ServiceError(400, "not-supported", f"search parameter {name[:80]!r} is not supported by this"
                               " server (Prefer: handling=strict)", name[:80], reason="unsupported-parameter")
        self.as_given = False

    def search(self) -> DocumentSearch:
        if self.patient is None:
            raise required("patient.identifier")
        results = self.results
        count = int(results["_count"]) if "_count" in results else DEFAULT_COUNT
        summary_count = count == 0 or results.get("_summary") == "count"
        statuses = STATUSES if self.statuses is None else tuple(s for s in _ALL_STATUSES if s in self.statuses)
        query = DocumentQuery(self.patient, () if self.no_match else statuses, tuple(self.filters),
                              0 if summary_count else count, self.after)
        return DocumentSearch(query, self.as_given, summary_count or results.get("_total") in ("accurate", "estimate"),
                              not summary_count, self.applied, results)


def document_search(params: Parameters, strict: bool = False) -> DocumentSearch:
    """The search a query string (or a ``_search`` form) asks; 400 naming the first parameter at fault."""
    builder = _Builder(strict)
    for name, value in params.multi_items():
        builder.add(name, value)
    return builder.search()


# --- one handler per parameter: (builder, name as given, modifier, value) -> the value applied, or None ---

Handler = Callable[[_Builder, str, str, str], str | None]


def _modifiers(name: str, modifier: str, allowed: tuple[str, ...]) -> None:
    if modifier not in allowed:
        raise ServiceError(400, "not-supported", f"{name[:80]}: the modifier :{modifier[:40]} is not supported"
                           f" (supported: {', '.join(':' + m for m in allowed if m) or 'none'})", name[:80],
                           reason="unsupported-modifier")


def _patient(b: _Builder, name: str, modifier: str, value: str) -> str | None:
    if name == "patient":
        raise invalid("patient: a reference to a Patient resource is not supported (this service keeps no"
                      " Patient resources); search by patient.identifier=SYSTEM|INS", "patient")
    _modifiers(name, modifier, ("",) if name.startswith("patient.identifier") else ("identifier",))
    found: set[str] = set()
    for item in sf.split_list(value, name):
        system, ins = sf.token(item, name)
        ins = checked_ins(system, ins, name)
        b.no_match |= system == ""  # every INS has its system: "|INS" matches none
        found.add(ins)
    if len(found) > 1:
        raise invalid(f"{name}: a search covers one patient, not {len(found)}", name)
    ins = found.pop()
    b.no_match |= b.patient is not None and b.patient != ins
    b.patient = b.patient or ins
    return value


def _status(b: _Builder, name: str, modifier: str, value: str) -> str:
    _modifiers(name, modifier, ("", "not", "missing"))
    if modifier == "missing":
        allowed = set() if sf.missing(value, name) else set(_ALL_STATUSES)  # every document has a status
    else:
        codes = set()
        for item in sf.split_list(value, name):
            system, code = sf.token(item, name)
            if system not in (None, STATUS_SYSTEM) or code not in _ALL_STATUSES:
                raise invalid(f"{name} {item[:40]!r} is not current, superseded or entered-in-error", name)
            codes.add(code)
        allowed = set(_ALL_STATUSES) - codes if modifier == "not" else codes
    b.statuses = allowed if b.statuses is None else b.statuses & allowed
    return value


def _type(b: _Builder, name: str, modifier: str, value: str) -> str:
    _modifiers(name, modifier, ("", "not", "missing"))
    if modifier == "missing":
        if sf.missing(value, name):
            b.filters.append(sf.NO_MATCH)  # a deposit always has its type
        return value
    tokens = [sf.token(item, name) for item in sf.split_list(value, name)]
    if modifier == "not":
        b.filters.append(sf.negated(sf.tokens_condition("type", tokens)))
        return value
    codes: list[str] = []
    for system, code in tokens:
        if system == "":
            continue  # a type always has its system
        known = TYPE_CODES_BY_SYSTEM.get(system, frozenset()) if system is not None else _ALL_TYPE_CODES
        if code is None and known:
            codes.extend(sorted(known))
        elif code not in known:
            raise ServiceError(400, "code-invalid", f"{name} {value[:80]!r}: not a known document type", name,
                               reason="unknown-type")
        else:
            codes.append(code)
    b.filters.append((f"type_code IN ({','.join('?' * len(codes))})", tuple(codes)) if codes else sf.NO_MATCH)
    return value


def _token_parameter(parameter: str) -> Handler:
    """A token parameter read from ``document_tokens`` (see :mod:`search_index`)."""

    def handle(b: _Builder, name: str, modifier: str, value: str) -> str:
        _modifiers(name, modifier, ("", "not", "missing"))
        if modifier == "missing":
            present = sf.any_token(parameter)
            b.filters.append(sf.negated(present) if sf.missing(value, name) else present)
            return value
        condition = sf.tokens_condition(parameter, [sf.token(item, name) for item in sf.split_list(value, name)])
        b.filters.append(sf.negated(condition) if modifier == "not" else condition)
        return value

    return handle


def _security_label(b: _Builder, name: str, modifier: str, value: str) -> str:
    """security-label: the labels deposited, and the patient's mask as it is now (``documents.masked``)."""
    _modifiers(name, modifier, ("", "not", "missing"))
    if modifier == "missing":
        none = ("(masked = 0 AND NOT " + sf.any_token("security-label")[0] + ")", ("security-label",))
        b.filters.append(none if sf.missing(value, name) else sf.negated(none))
        return value
    tokens = [sf.token(item, name) for item in sf.split_list(value, name)]
    condition = sf.tokens_condition("security-label", tokens)
    if any(system in (None, VISIBILITY_SYSTEM) and code in (None, MASKED_FROM_PROFESSIONALS)
           for system, code in tokens):
        condition = sf.either([condition, ("masked = 1", ())])
    b.filters.append(sf.negated(condition) if modifier == "not" else condition)
    return value


def _relatesto(b: _Builder, name: str, modifier: str, value: str) -> str:
    """relatesto (a reference: ``DocumentReference/id``, ``id`` or a full URL), or ``:identifier``."""
    _modifiers(name, modifier, ("", "identifier", "missing"))
    if modifier == "missing":
        present = sf.any_token("relatesto")
        b.filters.append(sf.negated(present) if sf.missing(value, name) else present)
    elif modifier == "identifier":
        b.filters.append(sf.tokens_condition("relatesto:identifier",
                                             [sf.token(item, name) for item in sf.split_list(value, name)]))
    else:
        ids = [item.split("/_history/")[0].rstrip("/").rpartition("/")[2] for item in sf.split_list(value, name)]
        b.filters.append(sf.tokens_condition("relatesto", [(None, i) for i in ids if i]) if any(ids) else sf.NO_MATCH)
    return value


def _date(b: _Builder, name: str, modifier: str, value: str) -> str:
    _modifiers(name, modifier, ("", "missing"))
    if modifier == "missing":
        if sf.missing(value, name):
            b.filters.append(sf.NO_MATCH)  # a deposit always has its date
        return value
    ranges = sf.date_ranges(value, name)
    b.filters.append(sf.date_column_condition(ranges, _now_if_needed(b, ranges)))
    return value


def _now_if_needed(b: _Builder, ranges: list[tuple[str, tuple[int, int]]]) -> int:
    """The time now (µs) if a prefix needs it (``ap``), else 0."""
    return b.now if any(prefix == "ap" for prefix, _ in ranges) else 0


def _stored_date(parameter: str) -> Handler:
    """A date parameter read from ``document_dates`` (period: a Period's range; creation: a dateTime's)."""

    def handle(b: _Builder, name: str, modifier: str, value: str) -> str:
        _modifiers(name, modifier, ("", "missing"))
        if modifier == "missing":
            present = sf.any_date(parameter)
            b.filters.append(sf.negated(present) if sf.missing(value, name) else present)
            return value
        ranges = sf.date_ranges(value, name)
        b.filters.append(sf.stored_dates_condition(parameter, ranges, _now_if_needed(b, ranges)))
        return value

    return handle


def _author(b: _Builder, name: str, modifier: str, value: str) -> str | None:
    """author.identifier (or author:identifier): an author's RPPS, or an authoring facility's FINESS."""
    if name == "author":
        return None  # a reference to a Practitioner resource: none is kept here (authors are identifiers)
    _modifiers(name, modifier, ("",) if name.startswith("author.identifier") else ("identifier",))
    numbers = [_author_number(item, name) for item in sf.split_list(value, name)]
    b.filters.append(sf.either([("authors LIKE ?", (f"%|{n}|%",)) for n in numbers if n]) if any(numbers)
                     else sf.NO_MATCH)
    return value


def _author_number(item: str, name: str) -> str | None:
    """The RPPS or FINESS an author.identifier item names; None for ``|value`` (no author lacks a system)."""
    system, value = sf.token(item, name)
    if value is None:
        raise invalid(f"{name}: a system alone is not supported; name the author's identifier", name)
    if system == "":
        return None
    if system == IDNAT_STRUCT_SYSTEM and value.startswith("1") and is_valid_finess(value[1:]):
        return value[1:]
    if system in FINESS_SYSTEMS and is_valid_finess(value):
        return value
    rpps = value[1:] if len(value) == 12 and value.startswith("8") else value
    if system in (None, RPPS_SYSTEM) and is_valid_rpps(rpps):
        return rpps
    if system is None and is_valid_finess(value):
        return value
    raise invalid(f"{name} {item[:60]!r} is not an RPPS ({RPPS_SYSTEM}|8 + RPPS) or a FINESS"
                  f" ({FINESS_SYSTEM}|FINESS, {IDNAT_STRUCT_SYSTEM}|1 + FINESS)", name)


def _id(b: _Builder, name: str, modifier: str, value: str) -> str:
    _modifiers(name, modifier, ("",))
    ids = sf.split_list(value, name)
    b.filters.append((f"id IN ({','.join('?' * len(ids))})", tuple(ids)))
    return value


def _count(b: _Builder, name: str, modifier: str, value: str) -> str:
    """_count: a page's size, clamped to [0, MAX_COUNT] (FHIR: a hint; the server may send fewer)."""
    _modifiers(name, modifier, ("",))
    if not value.isascii() or not value.isdigit():
        raise invalid(f"_count must be a whole number (0 or more), not {value[:20]!r}", "_count")
    digits = value.lstrip("0") or "0"  # 00000 is 0, not a five-digit number
    return str(MAX_COUNT if len(digits) > 4 else min(int(digits), MAX_COUNT))


def _total(b: _Builder, name: str, modifier: str, value: str) -> str:
    _modifiers(name, modifier, ("",))
    if value not in ("none", "estimate", "accurate"):
        raise invalid(f"_total must be none, estimate or accurate, not {value[:20]!r}", "_total")
    return value


def _summary(b: _Builder, name: str, modifier: str, value: str) -> str | None:
    """_summary: ``count`` (only the total) or ``false`` (whole resources); true, text, data: not supported."""
    _modifiers(name, modifier, ("",))
    if value in ("true", "text", "data"):
        return None
    if value not in ("count", "false"):
        raise invalid(f"_summary must be true, text, data, count or false, not {value[:20]!r}", "_summary")
    return value


def _cursor(b: _Builder, name: str, modifier: str, value: str) -> str:
    _modifiers(name, modifier, ("",))
    b.after = document_cursor(value)
    return value


_HANDLERS: dict[str, Handler] = {
    "patient.identifier": _patient, "patient": _patient,
    "status": _status, "type": _type, "date": _date,
    "author.identifier": _author, "author": _author,
    "category": _token_parameter("category"), "event": _token_parameter("event"),
    "facility": _token_parameter("facility"), "setting": _token_parameter("setting"),
    "format": _token_parameter("format"), "identifier": _token_parameter("identifier"),
    "security-label": _security_label, "relatesto": _relatesto,
    "period": _stored_date("period"), "creation": _stored_date("creation"),
    "_id": _id, "_count": _count, "_total": _total, "_summary": _summary, "_cursor": _cursor,
}

# name -> FHIR search parameter type, as /metadata states them (the filters; result parameters apart)
SEARCH_PARAMETERS = {
    "patient.identifier": "token", "status": "token", "type": "token", "category": "token", "date": "date",
    "period": "date", "creation": "date", "author.identifier": "token", "facility": "token", "setting": "token",
    "security-label": "token", "format": "token", "event": "token", "identifier": "token",
    "relatesto": "reference", "_id": "token",
}
