"""SQL conditions for ITI-67 filters: FHIR R4 token, reference and date matching (search.html).

Every function returns a condition on a row of ``documents`` and its parameters (``?`` placeholders, the
same SQL on SQLite and PostgreSQL), or raises a 400 naming the parameter whose value is malformed.
A comma list is ORed inside one condition; the caller ANDs the conditions of repeated parameters.
Token values may escape ``,``, ``|``, ``$`` and ``\\`` with a backslash (search.html#escaping).
"""

from __future__ import annotations

from record_service import search_dates
from record_service.outcomes import invalid

Condition = tuple[str, tuple]
NO_MATCH: Condition = ("0 = 1", ())


def split_list(value: str, name: str) -> list[str]:
    """The items of a comma list (escapes kept); 400 on an empty item."""
    if "," not in value and "\\" not in value and value:  # the usual case, quickly
        return [value]
    items = _split(value, ",")
    if any(not item for item in items):
        raise invalid(f"{name}: an empty value in {value[:80]!r}", name)
    return items


def token(item: str, name: str) -> tuple[str | None, str | None]:
    """(system, code) of a token item: ``system|code``, ``|code`` (system ''), ``system|`` (code None) or
    ``code`` (system None: any). 400 on ``|`` alone or a second unescaped ``|``."""
    parts = item.split("|") if "\\" not in item else _split(item, "|")
    if len(parts) == 1:
        return None, _unescape(parts[0])
    if len(parts) != 2 or parts == ["", ""]:
        raise invalid(f"{name}: {item[:80]!r} is not a token (code, system|code, |code or system|)", name)
    system, code = parts
    return (_unescape(system), _unescape(code) or None) if "\\" in item else (system, code or None)


def tokens_condition(parameter: str, tokens: list[tuple[str | None, str | None]]) -> Condition:
    """True when the document has a ``parameter`` token matching any of ``tokens``."""
    matches, params = [], [parameter]
    for system, code in tokens:
        if system is None:
            matches.append("t.code = ?")
            params.append(code)
        elif code is None:
            matches.append("t.system = ?")
            params.append(system)
        else:
            matches.append("(t.system = ? AND t.code = ?)")
            params.extend((system, code))
    return (f"EXISTS (SELECT 1 FROM document_tokens t WHERE t.document_id = documents.id AND t.parameter = ?"
            f" AND ({' OR '.join(matches)}))", tuple(params))


def any_token(parameter: str) -> Condition:
    """True when the document has any ``parameter`` token (``:missing=false``)."""
    return ("EXISTS (SELECT 1 FROM document_tokens t WHERE t.document_id = documents.id AND t.parameter = ?)",
            (parameter,))


def negated(condition: Condition) -> Condition:
    return f"NOT ({condition[0]})", condition[1]


def either(conditions: list[Condition]) -> Condition:
    """OR of ``conditions`` (one is returned as it is)."""
    if len(conditions) == 1:
        return conditions[0]
    return "(" + " OR ".join(sql for sql, _ in conditions) + ")", tuple(p for _, params in conditions for p in params)


def missing(value: str, name: str) -> bool:
    """The value of a ``:missing`` modifier."""
    if value not in ("true", "false"):
        raise invalid(f"{name} must be true or false, not {value[:20]!r}", name)
    return value == "true"


def date_ranges(value: str, name: str) -> list[tuple[str, tuple[int, int]]]:
    """(prefix, [first, last] µs) of each item of a date parameter's comma list.

    A '+' of a time zone sent unescaped arrives as a space (form encoding): it is read back as '+'.
    """
    ranges = []
    for item in split_list(value, name):
        prefix, text = search_dates.split_prefix(item)
        if prefix not in search_dates.PREFIXES:
            raise invalid(f"{name}: prefix {prefix!r} is not one of {', '.join(search_dates.PREFIXES)}", name)
        found = search_dates.value_range(text.replace(" ", "+"))
        if found is None:
            raise invalid(f"{name}: {text[:40]!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a date-time"
                          " such as YYYY-MM-DDThh:mm[:ss[.fff]][Z|+hh:mm])", name)
        ranges.append((prefix, found))
    return ranges


def date_column_condition(ranges: list[tuple[str, tuple[int, int]]], now: int) -> Condition:
    """``documents.date_us`` (an instant: a range of one microsecond) against each range, ORed."""
    return either([search_dates.point_condition(prefix, found, "date_us", now) for prefix, found in ranges])


def stored_dates_condition(parameter: str, ranges: list[tuple[str, tuple[int, int]]], now: int) -> Condition:
    """True when the document's ``parameter`` range (``document_dates``) matches any of ``ranges``."""
    sql, params = either([search_dates.condition(prefix, found, "v.low_us", "v.high_us", now)
                          for prefix, found in ranges])
    return (f"EXISTS (SELECT 1 FROM document_dates v WHERE v.document_id = documents.id AND v.parameter = ?"
            f" AND {sql})", (parameter, *params))


def any_date(parameter: str) -> Condition:
    return ("EXISTS (SELECT 1 FROM document_dates v WHERE v.document_id = documents.id AND v.parameter = ?)",
            (parameter,))


def _split(text: str, separator: str) -> list[str]:
    """``text`` cut at each ``separator`` not escaped by a backslash; escapes are kept."""
    if "\\" not in text:
        return text.split(separator)
    parts, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == separator:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)
