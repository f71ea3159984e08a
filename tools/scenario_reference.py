"""Write docs/scenario-reference.md from the scenario models, so the reference cannot drift from the code.

Every key of every model reachable from ``Scenario`` in simulator/scenario.py: where it sits,
its type, default, allowed range and meaning (the field's description, which gives the unit).
tests/simulator/test_reference.py fails when the committed file differs from what this prints,
or when a model has no docstring or a key no description.

Run: uv run python tools/scenario_reference.py > docs/scenario-reference.md
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import scenario as models  # noqa: E402

_SCALARS = {float: "number", int: "integer", str: "text", bool: "true or false", dt.date: "date",
            dt.datetime: "date and time", type(None): "null"}
_PLURALS = {"number": "numbers", "integer": "integers", "text": "texts", "date": "dates", "sector": "sectors",
            "true or false": "true-or-false values", "date and time": "dates and times"}
_KEYS = {str: "name", dt.date: "date"}


# --- walking the models -------------------------------------------------------------------------


def _strip(annotation) -> tuple[typing.Any, tuple]:
    """The annotation without its ``Annotated`` wrapper, and the wrapper's metadata."""
    if typing.get_origin(annotation) is typing.Annotated:
        return annotation.__origin__, tuple(annotation.__metadata__)
    return annotation, ()


def _is_union(annotation) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _is_model(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _models_in(annotation) -> list[type[BaseModel]]:
    annotation, _ = _strip(annotation)
    if _is_model(annotation):
        return [annotation]
    return [model for argument in typing.get_args(annotation) for model in _models_in(argument)]


def reachable_models() -> list[type[BaseModel]]:
    """Every model a scenario file can contain, breadth first from :class:`Scenario`."""
    queue, seen = [models.Scenario], []
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.append(model)
        for info in model.model_fields.values():
            queue += [m for m in _models_in(info.annotation) if m not in seen]
    return seen


def _key_paths() -> dict[type[BaseModel], list[str]]:
    """Where each model sits in a scenario file, as key paths (``sectors.<sector>.activity``)."""
    paths: dict[type[BaseModel], list[str]] = {}

    def visit(annotation, path: str) -> None:
        annotation, _ = _strip(annotation)
        if _is_model(annotation):
            paths.setdefault(annotation, []).append(path)
            for name, info in annotation.model_fields.items():
                visit(info.annotation, f"{path}.{name}" if path else name)
        elif typing.get_origin(annotation) is dict:
            key, value = typing.get_args(annotation)
            visit(value, f"{path}.<{_key_noun(key)}>")
        elif typing.get_origin(annotation) is list:
            visit(typing.get_args(annotation)[0], f"{path}[]")
        else:
            for argument in typing.get_args(annotation):
                visit(argument, path)

    visit(models.Scenario, "")
    return {model: list(dict.fromkeys(found)) for model, found in paths.items()}


def event_models() -> list[type[BaseModel]]:
    """The event models, in the order of the ``Event`` union."""
    union, _ = _strip(models.Event)
    return list(typing.get_args(union))


def _kind(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("kind")
    if field is None or typing.get_origin(field.annotation) is not typing.Literal:
        return None
    return typing.get_args(field.annotation)[0]


# --- types ----------------------------------------------------------------------------------------


def _is_sector(annotation) -> bool:
    return (typing.get_origin(annotation) is typing.Literal
            and set(typing.get_args(annotation)) == set(models.PROFESSIONAL_SECTORS))


def _key_noun(annotation) -> str:
    annotation, _ = _strip(annotation)
    if _is_sector(annotation):
        return "sector"
    return _KEYS.get(annotation, type_text(annotation))


def _link(model: type[BaseModel]) -> str:
    return f"[{model.__name__}](#{model.__name__.lower()})"


def _plural(noun: str) -> str:
    return _PLURALS.get(noun, noun)


def _lengths(metadata) -> tuple[int | None, int | None]:
    bounds = _bounds(metadata)
    return bounds.get("min_length"), bounds.get("max_length")


def type_text(annotation, metadata=()) -> str:
    """A readable type: ``number``, ``list of 24 numbers``, ``mapping sector → Sector``, ``A or B or null``."""
    annotation, inner = _strip(annotation)
    metadata = tuple(metadata) + inner
    if _is_model(annotation):
        return _link(annotation)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        if _is_sector(annotation):
            return "sector"
        if len(arguments) == 1:
            return f"`{arguments[0]}`"
        return "one of " + ", ".join(f"`{value}`" for value in arguments)
    if origin is list:
        low, high = _lengths(metadata)
        element = type_text(arguments[0])
        count = f"{low} " if low is not None and low == high else ""
        return f"list of {count}{_plural(element)}"
    if origin is dict:
        return f"mapping {_key_noun(arguments[0])} → {type_text(arguments[1])}"
    if _is_union(annotation):
        members = [_strip(argument)[0] for argument in arguments]
        if all(_is_model(m) and issubclass(m, models._Event) for m in members):
            return "event (one of: " + ", ".join(_link(m) for m in members) + ")"
        texts = [type_text(argument) for argument in arguments if argument is not type(None)]
        if type(None) in arguments:
            texts.append("null")
        return " or ".join(texts)
    return str(annotation)


# --- ranges ---------------------------------------------------------------------------------------


def _bounds(metadata) -> dict[str, typing.Any]:
    """The constraints in some metadata (``annotated_types`` objects, or a ``Field()`` holding them)."""
    found: dict[str, typing.Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update(_bounds(item.metadata))
            continue
        for attribute in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(item, attribute, None)
            if value is not None:
                found[attribute] = value
    return found


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _range_words(bounds: dict[str, typing.Any], kind: str = "number") -> list[str]:
    words = []
    if "ge" in bounds and "le" in bounds:
        words.append(f"{_number(bounds['ge'])} .. {_number(bounds['le'])}")
    else:
        for attribute, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if attribute in bounds:
                words.append(f"{sign} {_number(bounds[attribute])}")
    low, high = bounds.get("min_length"), bounds.get("max_length")
    if kind == "text":
        if low == 1 and high is None:
            words.append("not empty")
        elif low is not None or high is not None:
            words.append(f"{low or 0} .. {high} characters" if high is not None else f"at least {low} characters")
    elif low is not None and low != high:
        unit = "item" if low == 1 else "items"
        words.append(f"at least {low} {unit}" if high is None else f"{low} .. {high} items")
    if "pattern" in bounds:
        words.append(f"matches `{bounds['pattern']}`")
    return words


def _element_ranges(annotation, prefix: str) -> list[str]:
    """Constraints on the items of a list or the values of a mapping (``each >= 0``)."""
    annotation, _ = _strip(annotation)
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        element, metadata = _strip(arguments[0])
        return [f"{prefix} {words}" for words in _range_words(_bounds(metadata))]
    if origin is dict:
        value, metadata = _strip(arguments[1])
        return [f"{prefix} value {words}" for words in _range_words(_bounds(metadata))]
    return []


def range_text(info: FieldInfo) -> str:
    """Every constraint of a field, with those of an ``Annotated`` alias (Fraction = 0 .. 1) and of its items."""
    annotation = info.annotation
    kind = "text" if annotation is str else "number"
    words = _range_words(_bounds(info.metadata), kind)
    words += _element_ranges(annotation, "each")
    if _is_union(annotation):
        for argument in typing.get_args(annotation):
            member, metadata = _strip(argument)
            member_words = _range_words(_bounds(metadata), "text" if member is str else "number")
            member_words += _element_ranges(member, "each")
            if member_words and typing.get_origin(member) is list:
                member_words = [f"as a list: {word}" for word in member_words]
            words += member_words
    return ", ".join(dict.fromkeys(words))


# --- defaults -------------------------------------------------------------------------------------


def _value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_value(k)}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def default_text(info: FieldInfo) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "**required**"
    value = info.default_factory() if info.default_factory else info.default
    if isinstance(value, BaseModel):
        return f"the defaults of {_link(type(value))}"
    if value in ({}, []):
        return "empty"
    return f"`{_value(value)}`"


# --- the page -------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _doc(model: type[BaseModel]) -> list[str]:
    """The model's docstring as Markdown paragraphs (``code`` becomes `code`)."""
    paragraphs = [" ".join(line.strip() for line in block.splitlines()).strip()
                  for block in (model.__doc__ or "").strip().split("\n\n")]
    return [re.sub(r"``(.+?)``", r"`\1`", p) for p in paragraphs if p]


def reference() -> str:
    sectors = ", ".join(f"`{name}`" for name in models.PROFESSIONAL_SECTORS)
    lines = [
        "# Scenario reference (generated)", "",
        "Generated from `simulator/scenario.py` by `tools/scenario_reference.py`; do not edit by hand",
        "(run `uv run python tools/scenario_reference.py > docs/scenario-reference.md`). The guide with",
        "examples is [scenarios.md](scenarios.md).", "",
        "Every key of every model a scenario file can hold, starting from [Scenario](#scenario). The unit",
        "of each value is in its meaning. Unknown keys are errors. `extends:` (the path of a parent",
        "scenario, relative to the file) is read by the loader before validation and is not a key of the",
        "models. A key governed by an assumption is set through `assumptions.<name>`, never at its path.", "",
        "Types: *number* is any decimal number, *integer* a whole number, *text* a string, *date*",
        "`YYYY-MM-DD`, *date and time* `YYYY-MM-DDTHH:MM[:SS]` (the simulated clock, no time zone),",
        "*null* the YAML null (`~`, or nothing after the colon), and *sector* one of the professional",
        f"sectors: {sectors}.",
        "A range `a .. b` includes both ends; a *share* is a fraction between 0 and 1.", "",
        "## Events", "",
        "`events` maps a name of your choice to one event; its `kind` says which of these it is.", "",
        "| kind | model | what it does |", "|---|---|---|",
    ]
    for model in event_models():
        lines.append(f"| `{_kind(model)}` | {_link(model)} | {_cell(_doc(model)[0])} |")
    lines.append("")
    where = _key_paths()
    for model in reachable_models():
        lines += [f"## {model.__name__}", ""]
        for paragraph in _doc(model):
            lines += [paragraph, ""]
        paths = [path for path in where[model] if path]
        place = "At " + ", ".join(f"`{path}`" for path in paths) if paths else "The top level of a scenario file"
        if _kind(model) is not None:
            place = f"An event, `kind: {_kind(model)}`; at " + ", ".join(f"`{path}`" for path in paths)
        lines += [place + ".", ""]
        lines += ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
        for name, info in model.model_fields.items():
            lines.append(f"| `{name}` | {_cell(type_text(info.annotation, info.metadata))} | {_cell(default_text(info))} "
                         f"| {_cell(range_text(info))} | {_cell(info.description or '')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference())
