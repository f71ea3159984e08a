"""Scenarios: YAML files validated into typed, immutable objects.

A scenario may ``extends:`` another (a path relative to itself); mappings are merged key by
key, anything else (numbers, lists) is replaced. Events are a mapping by name, so a child can
change one parameter of an inherited event or switch it off with ``enabled: false``.

Every error names the file that set the offending key, the key path and what was expected;
unknown keys are errors, never silently ignored.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator,
                      model_validator)

from segur.errors import InputError

PROFESSIONAL_SECTORS = ("hospital", "town_doctor", "lab", "imaging", "pharmacy", "other_professional", "medico_social")
SECTORS = PROFESSIONAL_SECTORS + ("patient",)
ProfessionalSector = Literal["hospital", "town_doctor", "lab", "imaging", "pharmacy", "other_professional", "medico_social"]

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_knots(knots: dict[dt.date, float]) -> dict[dt.date, float]:
    if not knots:
        raise ValueError("needs at least one date: value pair")
    return dict(sorted(knots.items()))


class Curve(_Strict):
    """A value that moves over time: piecewise-linear between dated knots, flat before the first.

    After the last knot the value grows by ``growth_per_year`` (compounded; 0 = flat, said on
    purpose), up to ``cap`` when one is given: a curve never stops silently at its last date.
    """

    knots: dict[dt.date, float]
    growth_per_year: Annotated[float, Field(gt=-1.0, le=10.0)] = Field(
        0.0, description="relative growth per year after the last knot (0.3 = +30 %/year)")
    cap: float | None = Field(None, description="the value never goes above this after the last knot")

    _sorted = field_validator("knots")(_check_knots)


class Adoption(_Strict):
    """An S-curve (logistic) of the share of documents a sector sends: slow start, fast middle, ceiling.

    ``share(t) = floor + (ceiling - floor) / (1 + exp(-(t - midpoint) / w))`` with
    ``w = years_10_90 / (2 ln 9)`` years: the share goes from 10 % to 90 % of the way to the
    ceiling in ``years_10_90`` years, centred on ``midpoint``.
    """

    ceiling: Fraction = Field(description="share sent in the long run (0-1)")
    midpoint: dt.date = Field(description="date at which the share is halfway to the ceiling")
    years_10_90: Annotated[float, Field(gt=0.05, le=30.0)] = Field(description="years from 10 % to 90 % of the ceiling")
    floor: Fraction = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> "Adoption":
        if self.floor > self.ceiling:
            raise ValueError("needs floor <= ceiling")
        return self


def _curve_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "adoption" if "knots" not in value and "ceiling" in value else "curve"
    return "adoption" if isinstance(value, Adoption) else "curve"


ShareCurve = Annotated[Union[Annotated[Curve, Tag("curve")], Annotated[Adoption, Tag("adoption")]],
                       Discriminator(_curve_kind)]


class Profile24(_Strict):
    """Relative activity for each hour of the day (any positive scale; normalised to mean 1)."""

    hourly: Annotated[list[NonNegative], Field(min_length=24, max_length=24)]
    weekday: Annotated[list[NonNegative], Field(min_length=7, max_length=7)] = Field(
        description="Monday .. Sunday, relative (normalised to mean 1)")
    holiday: NonNegative = Field(1.0, description="activity on a public holiday, relative to a Sunday")

    @model_validator(mode="after")
    def _not_all_zero(self) -> "Profile24":
        if sum(self.hourly) <= 0 or sum(self.weekday) <= 0:
            raise ValueError("a profile needs some positive activity")
        return self


class DocumentSize(_Strict):
    """Lognormal size of one document type, clipped to [min_kb, max_kb]."""

    median_kb: Positive
    sigma: Annotated[float, Field(ge=0.0, le=3.0)]
    min_kb: Positive = 10.0
    max_kb: Positive = 20_000.0

    @model_validator(mode="after")
    def _ordered(self) -> "DocumentSize":
        if not self.min_kb <= self.median_kb <= self.max_kb:
            raise ValueError("needs min_kb <= median_kb <= max_kb")
        return self


class DocumentType(_Strict):
    code: str = Field(min_length=1, description="LOINC (http://loinc.org) or TRE_A05 code")
    name: str
    share: Positive = Field(description="relative share of the sector's documents")
    size: DocumentSize


class ProfessionalVisits(_Strict):
    """Professionals consulting the DMP when they see a patient (reads caused by care, not by deposits)."""

    per_producer_per_day: NonNegative = Field(description="patient contacts (visits, admissions) per producer per day")
    dmp_search_share: Curve = Field(description="share of contacts that search the patient's DMP")
    retrieves_per_search: NonNegative = Field(description="mean documents fetched after a search")


class Batching(_Strict):
    """How a sector's connectors send: at once, on the whole minute, or in timed batches (see simulator.batching)."""

    share: Fraction = Field(0.0, description="share of the documents that wait for the next timed batch (cron)")
    interval_minutes: Annotated[int, Field(gt=0, le=1440)] = Field(15, description="batches leave at multiples of this")
    minute_share: Fraction = Field(
        0.0, description="share sent by interface engines that flush what they hold on each whole minute")
    flush_seconds: Annotated[float, Field(ge=0.0, le=59.0)] = Field(
        2.0, description="a flush reaches the platform within this many seconds of its boundary")

    @field_validator("interval_minutes")
    @classmethod
    def _divides_a_day(cls, minutes: int) -> int:
        if 1440 % minutes:
            raise ValueError("must divide a day (1440 minutes): 5, 10, 15, 30, 60…")
        return minutes


class Sector(_Strict):
    """One professional sector ("couloir" of the Ségur programme)."""

    producers: Annotated[int, Field(gt=0)] = Field(description="national count of producing facilities or professionals")
    producer_kind: Literal["facility", "professional"]
    professionals_per_producer: Positive = 1.0
    size_sigma: Annotated[float, Field(ge=0.0, le=4.0)] = Field(
        description="lognormal spread of producer volume: a university hospital is not a local clinic")
    documents_per_producer_per_day: Positive = Field(description="documents produced (sent or not), yearly mean")
    dmp_share: ShareCurve = Field(description="share of produced documents sent to the DMP (knots or an S-curve)")
    seasonal_amplitude: NonNegative = Field(1.0, description="how strongly the sector follows the national seasonality")
    activity: Profile24
    document_types: Annotated[list[DocumentType], Field(min_length=1)]
    visits: ProfessionalVisits
    batching: Batching | None = None


class PatientUse(_Strict):
    """What patients do in Mon espace santé."""

    profiles: Annotated[int, Field(gt=0)]
    opposition_rate: Annotated[float, Field(ge=0.0, lt=0.2)]
    active_users: Curve = Field(description="activated profiles over time")
    connecting_users: Curve = Field(description="people who connect to Mon espace santé in a month")
    active_deposit_bias: Positive = Field(1.2, description="activated patients receive this many times the average share of deposits")
    sessions_per_connecting_user_per_month: Positive = Field(description="sessions of a person who connects in a month")
    searches_per_session: Annotated[float, Field(ge=1.0, le=20.0)] = Field(
        1.0, description="document-list requests per session (the first one opens the session)")
    retrieves_per_session: NonNegative = Field(description="document views per session (a notified session opens at least one)")
    history_views_per_session: Annotated[float, Field(ge=0.0, le=5.0)] = Field(
        0.0, description="access-history requests (who read my record) per session")
    notified_session_share: Fraction = Field(
        description="share of sessions that follow a deposit notification and open that document first")
    consultation_delay_median_hours: Positive
    consultation_delay_sigma: Annotated[float, Field(gt=0.0, le=4.0)]
    consultation_delay_max_days: Annotated[int, Field(gt=0, le=60)] = 30
    uploads_per_active_user_per_year: NonNegative
    masks_per_active_user_per_year: NonNegative
    deletes_per_active_user_per_year: NonNegative
    blocks_per_active_user_per_year: NonNegative
    upload_types: Annotated[list[DocumentType], Field(min_length=1)]
    activity: Profile24


class Seasonality(_Strict):
    monthly: Annotated[list[Positive], Field(min_length=12, max_length=12)] = Field(
        description="January .. December, relative (normalised to mean 1)")
    christmas_week: Positive = Field(1.0, description="extra factor from 24 December to 1 January")


class Growth(_Strict):
    production_per_year: Annotated[float, Field(gt=-0.5, lt=1.0)] = Field(description="growth of documents produced (not of the share sent)")
    reference_date: dt.date


class RetryPolicy(_Strict):
    """How a producer's connector retries after a failed deposit: exponential back-off with jitter."""

    first_delay_s: Positive = 60.0
    multiplier: Annotated[float, Field(ge=1.0)] = 2.0
    max_delay_s: Positive = 1800.0
    jitter: Fraction = 0.3
    drain_speedup: Annotated[float, Field(gt=1.0)] = Field(
        20.0, description="a connector drains its backlog this many times faster than it normally sends")


class PeopleRetry(_Strict):
    """How people and their software retry a refused read or action: a few tries with back-off, then give up."""

    first_delay_s: Positive = 30.0
    multiplier: Annotated[float, Field(ge=1.0)] = 2.0
    max_delay_s: Positive = 900.0
    jitter: Fraction = 0.5
    max_attempts: Annotated[int, Field(ge=1, le=20)] = Field(
        5, description="tries after the refused one; then the person gives up (counted, never lost)")


class _Event(_Strict):
    enabled: bool = True


class LabStrike(_Event):
    """Producers withhold documents; part of them is delivered after the strike."""

    kind: Literal["lab_strike"]
    start: dt.date
    end: dt.date
    sectors: list[ProfessionalSector] = ["lab"]
    withheld_share: Fraction = Field(description="share of documents not sent during the strike")
    delivered_later_share: Fraction = Field(description="share of the withheld documents sent after it")
    catch_up_days: Annotated[int, Field(gt=0, le=120)]

    @model_validator(mode="after")
    def _ordered(self) -> "LabStrike":
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class Outage(_Event):
    """The platform refuses all requests; producers queue and retry, the backlog floods back."""

    kind: Literal["outage"]
    start: dt.datetime
    duration_minutes: Annotated[int, Field(gt=0, le=14 * 24 * 60)]
    retry: RetryPolicy = RetryPolicy()
    people_retry: PeopleRetry = Field(PeopleRetry(), description="reads and patient actions refused during the outage")
    retry_groups_per_sector: Annotated[int, Field(gt=0, le=5000)] = Field(
        400, description="connectors simulated one by one (the largest producers each get their own)")


class Obligation(_Event):
    """The legal obligation to send: the share sent ramps up to a floor."""

    kind: Literal["obligation"]
    date: dt.date
    dmp_share: Fraction = Field(description="share sent once the ramp is over (a floor: never lowers a share)")
    ramp_days: Annotated[int, Field(ge=0, le=730)]
    sectors: list[ProfessionalSector] = list(PROFESSIONAL_SECTORS)
    consultation_share: Fraction | None = Field(
        None, description="share of care contacts that must search the DMP first (costly prescriptions): a floor")
    consultation_sectors: list[ProfessionalSector] = ["town_doctor", "hospital"]


class ResponseCurve(_Strict):
    """Who answers a campaign, and when: a share of recipients, after a lognormal delay."""

    share: Fraction = Field(description="share of the notified people who open Mon espace santé because of it")
    median_hours: Positive = Field(description="median delay between the send and the session")
    sigma: Annotated[float, Field(gt=0.0, le=4.0)] = 1.0
    max_days: Annotated[int, Field(gt=0, le=30)] = 7


class Campaign(_Event):
    """The CNAM notifies many insured people on one day (prevention, activation): a wave of patient sessions."""

    kind: Literal["campaign"]
    date: dt.date
    notifications: Annotated[float, Field(gt=0.0)] = Field(description="people notified, national count")
    send_hour: Annotated[int, Field(ge=0, le=23)] = 10
    send_hours: Annotated[int, Field(gt=0, le=24)] = Field(2, description="the sending is spread over this many hours")
    response_curve: ResponseCurve


class BackLoad(_Event):
    """Producers going live send their history, at night, paced: a back-load of old documents."""

    kind: Literal["back_load"]
    sector: ProfessionalSector
    start: dt.date
    documents: Annotated[float, Field(gt=0.0)] = Field(description="documents of history to send, national count")
    per_minute: Annotated[float, Field(gt=0.0)] = Field(description="sending pace, national documents per minute")
    night_start_hour: Annotated[int, Field(ge=0, le=23)] = 20
    night_end_hour: Annotated[int, Field(ge=0, le=23)] = 6


class Epidemic(_Event):
    """A winter wave: more care, hence more documents and reads, in the sectors it touches."""

    kind: Literal["epidemic"]
    start: dt.date
    peak: dt.date
    end: dt.date
    amplitude: Annotated[float, Field(ge=0.0, le=3.0)] = Field(description="extra activity at the peak (0.3 = +30 %)")
    sectors: list[ProfessionalSector] = ["town_doctor", "lab", "pharmacy"]

    @model_validator(mode="after")
    def _ordered(self) -> "Epidemic":
        if not self.start <= self.peak <= self.end:
            raise ValueError("needs start <= peak <= end")
        return self


Event = Annotated[Union[LabStrike, Outage, Obligation, Epidemic, Campaign, BackLoad], Field(discriminator="kind")]

LEVELS = ("low", "central", "high")
Level = Literal["low", "central", "high"]


class Assumption(_Strict):
    """A value no source gives: a central value and the ends of its plausible range.

    ``low`` and ``high`` are the ends that give the least and the most traffic at the peak
    (so ``low`` may be the larger number). ``path`` names the scenario key(s) it sets, dotted
    (``patients.retrieves_per_session``, ``sectors.lab.dmp_share.ceiling``; a date key as
    YYYY-MM-DD); a scenario sets those keys only through the assumption.
    """

    path: str | Annotated[list[str], Field(min_length=1)]
    low: float
    central: float
    high: float
    unit: str = Field(min_length=1)
    why: str = Field(min_length=1, description="why this range: what is known, what is not")

    @model_validator(mode="after")
    def _central_inside(self) -> "Assumption":
        if not min(self.low, self.high) <= self.central <= max(self.low, self.high):
            raise ValueError("central must lie between low and high")
        return self

    @property
    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)

    def value(self, level: str) -> float:
        return {"low": self.low, "central": self.central, "high": self.high}[level]


class Period(_Strict):
    start: dt.date
    end: dt.date = Field(description="inclusive")

    @model_validator(mode="after")
    def _ordered(self) -> "Period":
        if self.end < self.start:
            raise ValueError("end is before start")
        if (self.end - self.start).days > 6 * 366:
            raise ValueError("a period is at most six years")
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


class Replay(_Strict):
    """The window replayed against the record service: the busiest hour, or a fixed start."""

    start: dt.datetime | None = Field(None, description="fixed window start; default: the busiest clock hour")
    minutes: Annotated[int, Field(gt=0, le=24 * 60)] = 60
    history_documents_per_patient: Annotated[float, Field(ge=0.0, le=50.0)] = Field(
        3.0, description="mean older documents in the corpus for each patient the window reads")


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    period: Period
    seed: int = 2025
    scale: Annotated[float, Field(gt=0.0, le=4.0)] = 1.0
    sectors: dict[ProfessionalSector, Sector]
    patients: PatientUse
    seasonality: Seasonality
    growth: Growth
    events: dict[str, Event] = {}
    replay: Replay = Replay()
    uplift: Annotated[float, Field(gt=-1.0, le=10.0)] = Field(
        0.0, description="every expected volume times (1 + uplift): 0.3 says 'the same traffic, +30 %'")
    assumptions: dict[str, Assumption] = {}
    levels: dict[str, Level] = Field({}, description="the level each assumption was resolved at (set by the loader)")

    @field_validator("sectors")
    @classmethod
    def _all_sectors(cls, sectors: dict[str, Sector]) -> dict[str, Sector]:
        missing = [s for s in PROFESSIONAL_SECTORS if s not in sectors]
        if missing:
            raise ValueError(f"every professional sector must be described; missing: {', '.join(missing)}")
        return {s: sectors[s] for s in PROFESSIONAL_SECTORS}

    @property
    def level(self) -> str:
        """The assumption level of the run: low, central or high, or "mixed" (a sensitivity run)."""
        chosen = set(self.levels.values())
        return chosen.pop() if len(chosen) == 1 else ("central" if not chosen else "mixed")

    def at_levels(self, levels: str | dict[str, str]) -> "Scenario":
        """The same scenario with its assumptions at other levels (one level for all, or per name).

        Raises InputError for an unknown level or assumption name.
        """
        wanted = _levels_for(self.assumptions, levels, current=self.levels)
        data = _apply_assumptions(self.model_dump(), self.assumptions, wanted)
        data["levels"] = wanted
        try:
            return Scenario.model_validate(data)
        except ValidationError as error:
            raise InputError(_describe(error, "assumptions", [])) from None

    def active_events(self) -> dict[str, Event]:
        return {name: event for name, event in self.events.items() if event.enabled}

    def with_overrides(self, *, start: dt.date | None = None, end: dt.date | None = None,
                       scale: float | None = None, seed: int | None = None) -> "Scenario":
        """The same scenario with command-line overrides, validated again."""
        data = self.model_dump()
        if start is not None:
            data["period"]["start"] = start
        if end is not None:
            data["period"]["end"] = end
        if scale is not None:
            data["scale"] = scale
        if seed is not None:
            data["seed"] = seed
        try:
            return Scenario.model_validate(data)
        except ValidationError as error:
            raise InputError(_describe(error, "command line", [])) from None


# --- assumptions -------------------------------------------------------------------------------


def _levels_for(assumptions: dict[str, "Assumption"], levels: str | dict[str, str],
                current: dict[str, str] | None = None) -> dict[str, str]:
    if isinstance(levels, str):
        if levels not in LEVELS:
            raise InputError(f"assumption level must be one of {', '.join(LEVELS)}, got {levels!r}")
        return {name: levels for name in assumptions}
    unknown = [name for name in levels if name not in assumptions]
    if unknown:
        raise InputError(f"no assumption named {', '.join(unknown)} (known: {', '.join(assumptions) or 'none'})")
    bad = [f"{name}={level}" for name, level in levels.items() if level not in LEVELS]
    if bad:
        raise InputError(f"assumption levels must be one of {', '.join(LEVELS)}: {', '.join(bad)}")
    return {name: levels.get(name, (current or {}).get(name, "central")) for name in assumptions}


def _key(node: dict, part: str) -> Any:
    """The key of ``node`` spelled ``part``: dates are written YYYY-MM-DD in a path."""
    for key in node:
        if str(key) == part:
            return key
    try:
        return dt.date.fromisoformat(part)
    except ValueError:
        return part


def _lookup(data: dict, path: str) -> tuple[bool, Any]:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or _key(node, part) not in node:
            return False, None
        node = node[_key(node, part)]
    return True, node


def _apply_assumptions(data: dict, assumptions: dict[str, "Assumption"], levels: dict[str, str],
                       origin: Callable[[str], str] = lambda name: "assumptions") -> dict:
    """``data`` with each assumption's value at its level written at its paths (their parents must exist)."""
    for name, assumption in assumptions.items():
        value = assumption.value(levels.get(name, "central"))
        for path in assumption.paths:
            node = data
            parts = path.split(".")
            for depth, part in enumerate(parts[:-1]):
                key = _key(node, part)
                if not isinstance(node.get(key), dict):
                    where = ".".join(parts[:depth]) or "the top level"
                    raise InputError(f"{origin(name)}: assumptions.{name}.path: {path}: the scenario has no mapping {part!r} under "
                                     f"{where} for this assumption to set")
                node = node[key]
            node[_key(node, parts[-1])] = value
    return data


def _resolve(merged: dict[str, Any], chain: list[tuple[Path, dict[str, Any]]], source: str, level: str) -> dict[str, Any]:
    """Validate the ``assumptions`` block, refuse keys set beside their assumption, write the values."""
    if "levels" in merged:
        raise InputError(f"{_origin(chain, ('levels',))}: levels: set by `segur simulate --assumptions`, not in a file")
    raw = merged.get("assumptions") or {}
    if not isinstance(raw, dict):
        raise InputError(f"{_origin(chain, ('assumptions',))}: assumptions: expected a mapping of name: "
                         "{path, low, central, high, unit, why}")
    assumptions: dict[str, Assumption] = {}
    problems = []
    for name, body in raw.items():
        try:
            assumptions[name] = Assumption.model_validate(body)
        except ValidationError as error:
            problems.append(_describe(error, source, chain, prefix=("assumptions", name)))
    if problems:
        raise InputError("invalid scenario:\n  " + "\n  ".join(p.removeprefix("invalid scenario:\n  ") for p in problems))
    owners: dict[str, str] = {}
    for name, assumption in assumptions.items():
        for path in assumption.paths:
            if path in owners:
                raise InputError(f"assumptions: {name} and {owners[path]} both set {path}")
            owners[path] = name
            found, _ = _lookup(merged, path)
            if found:
                where = _origin(chain, tuple(path.split(".")))
                raise InputError(f"{where}: {path}: set by assumption {name!r}; change that assumption's "
                                 "low/central/high instead of the key")
    levels = _levels_for(assumptions, level)
    resolved = _apply_assumptions(copy.deepcopy(merged), assumptions, levels,
                                  lambda name: str(_origin(chain, ("assumptions", name))))
    resolved["levels"] = levels
    return resolved


class _ResolvedDumper(yaml.SafeDumper):
    """Lists of plain values on one line (profiles, shares), everything else in block style."""


def _short_list(dumper: yaml.SafeDumper, items: list) -> yaml.Node:
    flat = all(not isinstance(item, (dict, list)) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flat)


_ResolvedDumper.add_representer(list, _short_list)


def resolved_yaml(scenario: Scenario) -> str:
    """The scenario as it runs, as YAML: every key with its value, switched-off events left out."""
    data = scenario.model_dump(exclude={"levels"})
    data["events"] = {name: {"kind": event["kind"], **event} for name, event in data["events"].items()
                      if event.get("enabled", True)}
    data["assumption_levels"] = dict(scenario.levels)
    return yaml.dump(data, Dumper=_ResolvedDumper, sort_keys=False, allow_unicode=True, width=120)


# --- loading -------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such scenario file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a scenario is a mapping of keys, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _chain(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """The file and its ancestors, root first, each with its own raw keys."""
    path = path.resolve()
    if path in seen:
        raise InputError(f"{path}: 'extends' loops back to itself")
    raw = _read_yaml(path)
    parent = raw.pop("extends", None)
    if parent is None:
        return [(path, raw)]
    if not isinstance(parent, str):
        raise InputError(f"{path}: extends: expected a path to another scenario file")
    return _chain(path.parent / parent, seen + (path,)) + [(path, raw)]


def _origin(chain: list[tuple[Path, dict[str, Any]]], location: tuple) -> Path:
    """The file of the chain that sets the deepest part of the key path (the latest on a tie)."""
    best, best_depth = chain[-1][0], -1
    for path, raw in chain:
        node: Any = raw
        depth = 0
        for part in location:
            if not (isinstance(node, dict) and part in node):
                break
            node, depth = node[part], depth + 1
        if depth >= best_depth and depth > 0:
            best, best_depth = path, depth
    return best


_EVENT_KINDS = ("lab_strike", "outage", "obligation", "epidemic", "campaign", "back_load")


def _key_path(location: tuple) -> tuple:
    """Pydantic puts a tagged union's tag in the path (events.x.outage.start): take it out."""
    if len(location) > 2 and location[0] == "events" and location[2] in _EVENT_KINDS:
        return location[:2] + location[3:]
    return location


def _describe(error: ValidationError, source: str, chain: list[tuple[Path, dict[str, Any]]],
              prefix: tuple = ()) -> str:
    lines = []
    for problem in error.errors():
        location = prefix + _key_path(tuple(problem["loc"]))
        key_path = ".".join(str(part) for part in location) or "(top level)"
        where = str(_origin(chain, location)) if chain else source
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown key (not part of a scenario; check its spelling)"
        elif problem["type"] == "missing":
            message = "required key is missing"
        given = problem.get("input")
        shown = "" if problem["type"] in ("missing", "extra_forbidden") or isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"{where}: {key_path}: {message}{shown}")
    return "invalid scenario:\n  " + "\n  ".join(lines)


def load_scenario(path: str | Path, level: str = "central") -> Scenario:
    """Read, merge (``extends``) and validate a scenario file, its assumptions at ``level``.

    ``level`` is low, central or high (see :class:`Assumption`). Raises InputError naming the
    file, the key path and what was expected.
    """
    chain = _chain(Path(path))
    merged: dict[str, Any] = {}
    for _, raw in chain:
        merged = _merge(merged, raw)
    merged = _resolve(merged, chain, str(path), level)
    try:
        return Scenario.model_validate(merged)
    except ValidationError as error:
        raise InputError(_describe(error, str(path), chain)) from None
