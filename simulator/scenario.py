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
from typing import Annotated, Any, Callable, Literal, Union, get_args

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

    knots: dict[dt.date, NonNegative] = Field(
        description="date (YYYY-MM-DD) → value on that day, in the unit of the key that holds the curve; "
                    "linear between dates, flat before the first (at least one date)")
    growth_per_year: Annotated[float, Field(gt=-1.0, le=10.0)] = Field(
        0.0, description="relative growth per year after the last knot, compounded (0.3 = +30 %/year; 0 = flat)")
    cap: NonNegative | None = Field(
        None, description="ceiling of the growth after the last knot, in the curve's unit (a cap below the last "
                          "value keeps it flat); null: no ceiling")

    _sorted = field_validator("knots")(_check_knots)


class ShareCurveKnots(Curve):
    """A curve of a share: every value, and the cap, between 0 and 1."""

    knots: dict[dt.date, Fraction] = Field(
        description="date (YYYY-MM-DD) → share (0-1) on that day; linear between dates, flat before the first "
                    "(at least one date)")
    cap: Fraction | None = Field(
        None, description="share (0-1) the growth never goes above after the last knot (a cap below the last "
                          "value keeps it flat); null: no ceiling but 1")


class Adoption(_Strict):
    """An S-curve (logistic) of the share of documents a sector sends: slow start, fast middle, ceiling.

    ``share(t) = floor + (ceiling - floor) / (1 + exp(-(t - midpoint) / w))`` with
    ``w = years_10_90 / (2 ln 9)`` years: the share goes from 10 % to 90 % of the way to the
    ceiling in ``years_10_90`` years, centred on ``midpoint``.
    """

    ceiling: Fraction = Field(description="share (0-1) sent in the long run, long after the midpoint")
    midpoint: dt.date = Field(description="date (YYYY-MM-DD) at which the share is halfway from floor to ceiling")
    years_10_90: Annotated[float, Field(gt=0.05, le=30.0)] = Field(
        description="years the share takes to go from 10 % to 90 % of the way from floor to ceiling (the width of "
                    "the S)")
    floor: Fraction = Field(
        0.0, description="share (0-1) long before the midpoint: where the S starts from (at most ceiling)")

    @model_validator(mode="after")
    def _ordered(self) -> "Adoption":
        if self.floor > self.ceiling:
            raise ValueError("needs floor <= ceiling")
        return self


def _curve_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "adoption" if "knots" not in value and "ceiling" in value else "curve"
    return "adoption" if isinstance(value, Adoption) else "curve"


ShareCurve = Annotated[Union[Annotated[ShareCurveKnots, Tag("curve")], Annotated[Adoption, Tag("adoption")]],
                       Discriminator(_curve_kind)]


class Profile24(_Strict):
    """When the activity happens: relative weights per hour of the day and per day of the week, and public holidays.

    Weights are relative (any scale; each list is normalised to mean 1), so they shape the traffic
    without changing its daily total or, holidays aside, its weekly one. The hourly weights are
    interpolated between mid-hours, so the rate does not jump on the hour; each hour keeps its total.
    """

    hourly: Annotated[list[NonNegative], Field(min_length=24, max_length=24)] = Field(
        description="relative activity per hour of the day, 00:00-01:00 first (relative weights, normalised to mean "
                    "1; not all zero)")
    weekday: Annotated[list[NonNegative], Field(min_length=7, max_length=7)] = Field(
        description="relative activity Monday .. Sunday (relative weights, normalised to mean 1; not all zero)")
    holiday: NonNegative = Field(
        1.0, description="activity on a French public holiday, as a multiple of a Sunday's (1.0: a holiday is a "
                         "Sunday)")

    @model_validator(mode="after")
    def _not_all_zero(self) -> "Profile24":
        if sum(self.hourly) <= 0 or sum(self.weekday) <= 0:
            raise ValueError("a profile needs some positive activity")
        return self


class DocumentSize(_Strict):
    """Size of the documents of one type: lognormal around a median, clipped to [min_kb, max_kb] (KB of 1024 bytes)."""

    median_kb: Positive = Field(description="median size of a document, KB (1024 bytes); between min_kb and max_kb")
    sigma: Annotated[float, Field(ge=0.0, le=3.0)] = Field(
        description="lognormal spread of the size: standard deviation of its natural log (0 = every document at "
                    "the median)")
    min_kb: Positive = Field(10.0, description="smallest size, KB: smaller draws are raised to it")
    max_kb: Positive = Field(20_000.0, description="largest size, KB: larger draws are cut to it")

    @model_validator(mode="after")
    def _ordered(self) -> "DocumentSize":
        if not self.min_kb <= self.median_kb <= self.max_kb:
            raise ValueError("needs min_kb <= median_kb <= max_kb")
        return self


class DocumentType(_Strict):
    """One type of document a sector (or patients) deposits: its code, its share of the sector's documents, its size."""

    code: str = Field(min_length=1, description="type code sent with the document: LOINC (http://loinc.org) or TRE_A05")
    name: str = Field(description="the type's name, for people reading the scenario (not sent)")
    share: Positive = Field(
        description="relative weight among the sector's document types (any scale; normalised to sum 1)")
    size: DocumentSize = Field(description="size of a document of this type (KB, lognormal)")


class ProfessionalVisits(_Strict):
    """Professionals consulting the DMP when they see a patient (reads caused by care, not by deposits)."""

    per_producer_per_day: NonNegative = Field(
        description="patient contacts (visits, admissions) per producer per day, at growth.reference_date; they follow "
                    "the sector's seasons, hours, weekdays and epidemics")
    dmp_search_share: ShareCurveKnots = Field(
        description="share (0-1) of contacts that search the patient's DMP, over time (dated knots); an obligation's "
                    "consultation_share is a floor under it")
    retrieves_per_search: NonNegative = Field(description="documents fetched after a search, mean per search")


class Batching(_Strict):
    """How a sector's connectors send: at once, on the whole minute, or in timed batches (see simulator.batching)."""

    share: Fraction = Field(
        0.0, description="share (0-1) of the sector's documents held until the next timed batch (cron exports)")
    interval_minutes: Annotated[int, Field(gt=0, le=1440)] = Field(
        15, description="minutes between timed batches; batches leave at multiples of it from midnight (:00, :15…), "
                        "so it must divide a day (1440)")
    minute_share: Fraction = Field(
        0.0, description="share (0-1) of the documents not held for a batch that interface engines flush on each "
                         "whole minute (it moves them to the minute's first seconds, not to another minute)")
    flush_seconds: Annotated[float, Field(ge=0.0, le=59.0)] = Field(
        2.0, description="seconds after its boundary within which a flush (batch or minute) reaches the platform; "
                         "the replay schedule spreads flushed documents over them")

    @field_validator("interval_minutes")
    @classmethod
    def _divides_a_day(cls, minutes: int) -> int:
        if 1440 % minutes:
            raise ValueError("must divide a day (1440 minutes): 5, 10, 15, 30, 60…")
        return minutes


class Sector(_Strict):
    """One professional sector ("couloir" of the Ségur programme): who produces, how much, when, and what they read.

    Counts are national (``scale`` samples them); rates are per producer and per day, on the mean
    day at ``growth.reference_date``, before seasons, weekdays, hours and epidemics shape them.
    """

    producers: Annotated[int, Field(gt=0)] = Field(
        description="national count of producing facilities or professionals (times scale)")
    producer_kind: Literal["facility", "professional"] = Field(
        description="facility (a FINESS, with professionals_per_producer staff) or professional (one person, an RPPS)")
    professionals_per_producer: Positive = Field(
        1.0, description="professionals working for each facility (rounded, at least 1): the authors and readers drawn "
                         "for it; ignored for a professional producer")
    size_sigma: Annotated[float, Field(ge=0.0, le=4.0)] = Field(
        description="lognormal spread of producer volume (standard deviation of the log of each producer's weight): "
                    "a university hospital is not a local clinic; 0 = all producers alike")
    documents_per_producer_per_day: Positive = Field(
        description="documents produced per producer per day (sent to the DMP or not), mean day at "
                    "growth.reference_date")
    dmp_share: ShareCurve = Field(
        description="share (0-1) of produced documents sent to the DMP, over time: dated knots or an S-curve; an "
                    "obligation's dmp_share is a floor under it")
    seasonal_amplitude: NonNegative = Field(
        1.0, description="how much of seasonality.monthly's deviation from 1 the sector follows (1 = all of it, 0 = "
                         "none); the Christmas week applies in full")
    activity: Profile24 = Field(description="the sector's hours and weekdays (relative weights, normalised to mean 1)")
    document_types: Annotated[list[DocumentType], Field(min_length=1)] = Field(
        description="the types of document the sector deposits, with their relative shares and sizes")
    visits: ProfessionalVisits = Field(
        description="care contacts that read the DMP: professional searches and retrieves")
    batching: Batching | None = Field(
        None, description="how the sector's connectors time their sends; null: each document when it is ready "
                          "(uniform in its minute)")


class PatientUse(_Strict):
    """What patients do in Mon espace santé."""

    profiles: Annotated[int, Field(gt=0)] = Field(
        description="Mon espace santé profiles, national count (the patient pool is those not opposed, times scale)")
    opposition_rate: Annotated[float, Field(ge=0.0, lt=0.2)] = Field(
        description="share (0-1, below 0.2) of profiles whose holders opposed: never activated, never in the pool")
    active_users: Curve = Field(
        description="activated profiles over time, national count (at most the profiles not opposed); patients' own "
                    "actions are per activated profile")
    connecting_users: Curve = Field(
        description="people who connect to Mon espace santé in a month, national count over time: the published usage")
    active_deposit_bias: Positive = Field(
        1.2, description="activated profiles receive this many times the average share of deposits (the share of "
                         "deposits that can notify is bias x activated / profiles, at most 1)")
    sessions_per_connecting_user_per_month: Positive = Field(
        description="sessions per month of each person who connects in that month")
    searches_per_session: Annotated[float, Field(ge=1.0, le=20.0)] = Field(
        1.0, description="document-list requests (searches) per session, mean; the first one opens the session")
    retrieves_per_session: NonNegative = Field(
        description="document views (retrieves) per session, mean; a notified session opens at least the notified one")
    history_views_per_session: Annotated[float, Field(ge=0.0, le=5.0)] = Field(
        0.0, description="access-history requests (GET /AuditEvent: who read my record) per session, mean")
    notified_session_share: Fraction = Field(
        description="share (0-1) of sessions that follow a deposit notification: timed by the deposits (after the "
                    "consultation delay), they open the notified document first")
    consultation_delay_median_hours: Positive = Field(
        description="median delay between a notifying deposit and the patient's session, hours (lognormal)")
    consultation_delay_sigma: Annotated[float, Field(gt=0.0, le=4.0)] = Field(
        description="lognormal spread of that delay (standard deviation of its natural log)")
    consultation_delay_max_days: Annotated[int, Field(gt=0, le=60)] = Field(
        30, description="days after a deposit beyond which no notified session comes (the delay is cut there); the "
                        "deposits of as many days before the period are simulated too")
    uploads_per_active_user_per_year: NonNegative = Field(
        description="documents patients upload (patient deposits), per activated profile per year")
    masks_per_active_user_per_year: NonNegative = Field(
        description="professional documents patients mask, per activated profile per year")
    deletes_per_active_user_per_year: NonNegative = Field(
        description="patients' own uploads they delete, per activated profile per year")
    blocks_per_active_user_per_year: NonNegative = Field(
        description="professionals patients block from their record, per activated profile per year")
    upload_types: Annotated[list[DocumentType], Field(min_length=1)] = Field(
        description="the types of document patients upload, with their relative shares and sizes")
    activity: Profile24 = Field(
        description="the hours and weekdays of patients' use (relative weights, normalised to mean 1): every patient "
                    "request follows them")


class Seasonality(_Strict):
    """The national seasons of care: a relative weight per month and the Christmas week.

    They shape the professional sectors' production and care contacts (each sector by its
    ``seasonal_amplitude``); patients' own use follows its curves, not the seasons.
    """

    monthly: Annotated[list[Positive], Field(min_length=12, max_length=12)] = Field(
        description="relative activity January .. December (relative weights, normalised to mean 1), interpolated "
                    "between mid-months")
    christmas_week: Positive = Field(
        1.0, description="multiplier of professional activity from 24 December to 1 January (1 = no change)")


class Growth(_Strict):
    """Growth of care: documents produced and care contacts grow by a yearly rate, compounded from a reference date."""

    production_per_year: Annotated[float, Field(gt=-0.5, lt=1.0)] = Field(
        description="relative growth per year of documents produced and care contacts, compounded (0.03 = +3 %/year); "
                    "not of the share sent")
    reference_date: dt.date = Field(
        description="date (YYYY-MM-DD) at which the per-producer rates hold as written (less before, more after)")


class RetryPolicy(_Strict):
    """How a producer's connector retries after a failed deposit: exponential back-off with jitter."""

    first_delay_s: Positive = Field(60.0, description="wait before the first retry after a refused deposit, seconds")
    multiplier: Annotated[float, Field(ge=1.0)] = Field(
        2.0, description="each wait is this many times the previous one (exponential back-off; 1 = constant)")
    max_delay_s: Positive = Field(1800.0, description="longest wait between two tries, seconds")
    jitter: Fraction = Field(
        0.3, description="random spread of each wait, as a share (0-1) of it: 0.3 = ±30 %")
    drain_speedup: Annotated[float, Field(gt=1.0)] = Field(
        20.0, description="once through, a connector drains its backlog this many times faster than its mean sending "
                          "rate (documents per minute)")


class PeopleRetry(_Strict):
    """How people and their software retry a refused read or action: a few tries with back-off, then give up."""

    first_delay_s: Positive = Field(30.0, description="wait before the first new try after the refusal, seconds")
    multiplier: Annotated[float, Field(ge=1.0)] = Field(
        2.0, description="each wait is this many times the previous one (exponential back-off; 1 = constant)")
    max_delay_s: Positive = Field(900.0, description="longest wait between two tries, seconds")
    jitter: Fraction = Field(0.5, description="random spread of each wait, as a share (0-1) of it: 0.5 = ±50 %")
    max_attempts: Annotated[int, Field(ge=1, le=20)] = Field(
        5, description="tries after the refused one; then the person gives up (counted, never lost)")


class _Event(_Strict):
    enabled: bool = Field(
        True, description="false switches the event off (a child scenario can switch off an inherited event)")


class LabStrike(_Event):
    """Producers withhold documents; part of them is delivered after the strike."""

    kind: Literal["lab_strike"] = Field(description="the event's kind: lab_strike")
    start: dt.date = Field(description="first day of the strike (YYYY-MM-DD)")
    end: dt.date = Field(description="last day of the strike (YYYY-MM-DD, inclusive; not before start)")
    sectors: list[ProfessionalSector] = Field(["lab"], description="the sectors on strike")
    withheld_share: Fraction = Field(description="share (0-1) of the sectors' documents not sent during the strike")
    delivered_later_share: Fraction = Field(
        description="share (0-1) of the withheld documents sent after the strike; the rest are never sent (counted)")
    catch_up_days: Annotated[int, Field(gt=0, le=120)] = Field(
        description="days after the strike over which the withheld documents come back (front-loaded, at the "
                    "sector's hours)")

    @model_validator(mode="after")
    def _ordered(self) -> "LabStrike":
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class Outage(_Event):
    """The platform refuses all requests; producers queue and retry, the backlog floods back."""

    kind: Literal["outage"] = Field(description="the event's kind: outage")
    start: dt.datetime = Field(description="when the platform goes down: date and time (YYYY-MM-DDTHH:MM)")
    duration_minutes: Annotated[int, Field(gt=0, le=14 * 24 * 60)] = Field(
        description="how long the platform refuses every request, minutes (at most 14 days)")
    retry: RetryPolicy = Field(
        RetryPolicy(), description="how producers' connectors retry refused deposits and drain their backlog")
    people_retry: PeopleRetry = Field(
        PeopleRetry(), description="how people and their software retry the reads and patient actions refused during "
                                   "the outage")
    retry_groups_per_sector: Annotated[int, Field(gt=0, le=5000)] = Field(
        400, description="connectors simulated one by one in each sector: half of them the largest producers, each "
                         "alone; the rest of the producers grouped by size into the other half")


class Obligation(_Event):
    """A legal obligation (a what-if): the share sent ramps up to a floor, and optionally the share of care contacts
    that search the DMP first."""

    kind: Literal["obligation"] = Field(description="the event's kind: obligation")
    date: dt.date = Field(description="day the obligation takes effect and the ramp starts (YYYY-MM-DD)")
    dmp_share: Fraction = Field(
        description="share (0-1) of produced documents sent once the ramp is over (a floor: never lowers a share)")
    ramp_days: Annotated[int, Field(ge=0, le=730)] = Field(
        description="days over which the shares rise linearly to their floors (0 = at once)")
    sectors: list[ProfessionalSector] = Field(
        list(PROFESSIONAL_SECTORS), description="the sectors the sending floor (dmp_share) applies to")
    consultation_share: Fraction | None = Field(
        None, description="share (0-1) of care contacts that must search the DMP first (costly prescriptions): a "
                          "floor; null: no obligation to consult")
    consultation_sectors: list[ProfessionalSector] = Field(
        ["town_doctor", "hospital"], description="the sectors the consultation floor (consultation_share) applies to")


class ResponseCurve(_Strict):
    """Who answers a campaign, and when: a share of recipients, after a lognormal delay."""

    share: Fraction = Field(
        description="share (0-1) of the notified people who open Mon espace santé because of it, one session each")
    median_hours: Positive = Field(description="median delay between the notification and the session, hours")
    sigma: Annotated[float, Field(gt=0.0, le=4.0)] = Field(
        1.0, description="lognormal spread of that delay (standard deviation of its natural log)")
    max_days: Annotated[int, Field(gt=0, le=30)] = Field(
        7, description="days after the notification beyond which nobody answers: the delay is cut there and every "
                       "responder still connects")


class Campaign(_Event):
    """The CNAM notifies many insured people on one day (prevention, activation): a wave of patient sessions."""

    kind: Literal["campaign"] = Field(description="the event's kind: campaign")
    date: dt.date = Field(description="day of the sending (YYYY-MM-DD)")
    notifications: Annotated[float, Field(gt=0.0)] = Field(
        description="people notified, national count (times scale x (1 + uplift))")
    send_hour: Annotated[int, Field(ge=0, le=23)] = Field(10, description="hour of the day the sending starts (0-23)")
    send_hours: Annotated[int, Field(gt=0, le=24)] = Field(
        2, description="the sending is spread evenly over this many hours")
    response_curve: ResponseCurve = Field(
        description="who answers and when; each answer is a patient session (searches, views, history requests)")


class BackLoad(_Event):
    """Producers going live send their history, at night, paced: a back-load of old documents."""

    kind: Literal["back_load"] = Field(description="the event's kind: back_load")
    sector: ProfessionalSector = Field(description="the sector whose producers send their history (deposits)")
    start: dt.date = Field(description="first night of the sending (YYYY-MM-DD): it begins at night_start_hour")
    documents: Annotated[float, Field(gt=0.0)] = Field(
        description="documents of history to send, national count (times scale x (1 + uplift))")
    per_minute: Annotated[float, Field(gt=0.0)] = Field(
        description="sending pace, national documents per minute of night (times scale x (1 + uplift))")
    night_start_hour: Annotated[int, Field(ge=0, le=23)] = Field(
        20, description="hour the nightly sending starts (0-23)")
    night_end_hour: Annotated[int, Field(ge=0, le=23)] = Field(
        6, description="hour the nightly sending stops (0-23; before night_start_hour: the next morning; equal: "
                       "all day)")


class Epidemic(_Event):
    """A winter wave: more care, hence more documents and professional reads, in the sectors it touches (a triangle)."""

    kind: Literal["epidemic"] = Field(description="the event's kind: epidemic")
    start: dt.date = Field(description="day the wave begins (YYYY-MM-DD): the extra activity rises from 0 there")
    peak: dt.date = Field(description="day of the most extra activity (YYYY-MM-DD; between start and end)")
    end: dt.date = Field(description="day the wave is over (YYYY-MM-DD): the extra activity is back to 0 there")
    amplitude: Annotated[float, Field(ge=0.0, le=3.0)] = Field(
        description="extra care activity at the peak, relative (0.3 = +30 %); linear up from start, down to end")
    sectors: list[ProfessionalSector] = Field(
        ["town_doctor", "lab", "pharmacy"], description="the sectors whose production and care contacts it raises")

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

    path: str | Annotated[list[str], Field(min_length=1)] = Field(
        description="the dotted key path(s) the value is written to (patients.retrieves_per_session; a date key as "
                    "YYYY-MM-DD): one path or a list")
    low: float = Field(
        description="the value at the low level, in unit: the end that gives the least traffic at the peak")
    central: float = Field(description="the value at the central level (the default), in unit: between low and high")
    high: float = Field(
        description="the value at the high level, in unit: the end that gives the most traffic at the peak")
    unit: str = Field(min_length=1, description="the unit of the values, in words (e.g. documents opened per session)")
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
    """The days simulated: whole days, from the start of ``start`` to the end of ``end``, at most six years."""

    start: dt.date = Field(description="first day simulated (YYYY-MM-DD); segur simulate --from overrides it")
    end: dt.date = Field(
        description="last day simulated (YYYY-MM-DD, inclusive; not before start); segur simulate --to overrides it")

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

    start: dt.datetime | None = Field(
        None, description="fixed window start: date and time (YYYY-MM-DDTHH:MM); null: the busiest window, starting "
                          "on a whole hour (on a multiple of minutes when shorter than an hour)")
    minutes: Annotated[int, Field(gt=0, le=24 * 60)] = Field(60, description="length of the window, minutes (at most a day)")
    history_documents_per_patient: Annotated[float, Field(ge=0.0, le=50.0)] = Field(
        3.0, description="older documents put in the corpus for each patient a professional searches in the window, "
                         "mean per search")


class ReadAge(_Strict):
    """How old the documents are that a professional fetches at a visit, or a patient opens while browsing.

    The age at the moment of the read is lognormal around ``median_days`` with spread ``sigma``,
    cut at ``max_days`` (a professional's software searches at most two years back: PDSm4DMP,
    "période maximale de 2 ans") and at the history's start. A patient who opens the document
    they were just notified of follows the consultation delay instead
    (``patients.consultation_delay_*``). The median is an assumption (nothing is published on
    which documents are read); see ``assumptions.read_age`` in the shipped scenarios.
    """

    median_days: Positive = Field(
        60.0, description="median age of a document read at a visit or while browsing, days (lognormal)")
    sigma: Annotated[float, Field(gt=0.0, le=4.0)] = Field(
        1.5, description="lognormal spread of that age (standard deviation of its natural log)")
    max_days: Annotated[float, Field(gt=0.0, le=3650.0)] = Field(
        730.0, description="oldest document read, days (the draw is cut there; 730: the two years a search looks back)")


class CorpusHistory(_Strict):
    """The record at the window's start (corpus.parquet): every document deposited since ``history_start``.

    The counts are the model's: the drawn deposits (professional and patient uploads) of the
    simulated period before the window, and Poisson draws of the expected deposits before the
    period, at the scenario's scale. Documents deleted since are not taken out (patients delete
    few: ``patients.deletes_per_active_user_per_year``); documents of the DMP's years before
    ``history_start`` are not in it.
    """

    history_start: dt.date = Field(
        dt.date(2021, 1, 1),
        description="first day of the record's history (YYYY-MM-DD): documents deposited from then up to the window "
                    "start are the corpus (2021: the Ségur programme's launch, the first published deposit figures)")
    rows: Literal["all", "needed"] = Field(
        "all", description="all: corpus.parquet has a row for every document of the history (up to max_rows); "
                           "needed: only the documents the window's operations need (the history is still counted "
                           "in summary.json)")
    max_rows: Annotated[int, Field(gt=0)] = Field(
        5_000_000, description="most rows written to corpus.parquet: a larger history (a national run) is written as "
                               "its needed rows, then a uniform random sample of the others up to this many rows "
                               "(summary.json corpus.rows says sample)")
    read_age: ReadAge = Field(
        ReadAge(), description="how old the documents read at visits and while browsing are (lognormal, days)")


class CallPatterns(_Strict):
    """How a professional's software calls the DMP for one consultation or deposit: the calls the load driver
    makes of each interaction (load.interactions; sources in docs/xds-sources.md §3).

    Published (ANS PDSm4DMP guide, "exemples d'usage DMP", V0.3 2026): a first opening looks two years back
    (FindDocuments, "période maximale de 2 ans"); a later visit asks for the submission sets since the last
    visit, their associations, then the documents by batches of 20 ("par défaut 20"); a deposit needs the
    record's status first (TD0.2, transaction TD2's prerequisite EF_DMP12_01). Not published: how many
    consultations are first openings, and how long since the last visit (assumptions, with ranges in the
    scenarios). The documents opened per consultation are ``sectors.<sector>.visits.retrieves_per_search``.
    """

    first_visit_share: Fraction = Field(
        0.3, description="share (0-1) of professional consultations that open the patient's record for the first time "
                         "in the professional's software (FindDocuments over find_documents_years); the others are later "
                         "visits (FindSubmissionSets since the last visit, GetAssociations, GetDocumentsAndAssociations)")
    find_documents_years: Annotated[float, Field(gt=0.0, le=10.0)] = Field(
        2.0, description="how far back a first opening searches, years (PDSm4DMP: at most 2)")
    batch_size: Annotated[int, Field(ge=1, le=100)] = Field(
        20, description="DocumentEntries per GetDocumentsAndAssociations in a later visit (PDSm4DMP: 20 by default)")
    days_since_last_visit: Annotated[float, Field(gt=0.0, le=3650.0)] = Field(
        90.0, description="mean days since the professional's previous visit to the patient, for later visits "
                          "(exponential): what FindSubmissionSets asks for")
    access_check_before_deposit: bool = Field(
        True, description="a deposit starts with TD0.2 (the record must be open: PDSm4DMP TD2's prerequisite)")


class Scenario(_Strict):
    """A whole scenario: the days simulated, the national ecosystem (sectors, patients, seasons, growth), the events.

    Every count is national; ``scale`` samples the populations and ``uplift`` raises every volume.
    The ``assumptions`` hold the values no source gives, with their ranges; ``replay`` says which
    window is replayed against the record service.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$",
                      description="the run's name: lower-case letters, digits, '.', '_', '-' (it starts with a letter "
                                  "or a digit)")
    description: str = Field(description="what the scenario is, in words (copied into summary.json)")
    period: Period = Field(description="the days simulated")
    seed: int = Field(2025, description="random seed: the same scenario and seed give the same traffic")
    scale: Annotated[float, Field(gt=0.0, le=4.0)] = Field(
        1.0, description="multiplies every population (producers, patients, campaigns, back-loads): 1.0 is the nation, "
                         "0.002 a 1/500 sample")
    sectors: dict[ProfessionalSector, Sector] = Field(description="the seven professional sectors, all required")
    patients: PatientUse = Field(description="what patients do in Mon espace santé")
    seasonality: Seasonality = Field(description="the national seasons of care")
    growth: Growth = Field(description="the growth of care produced")
    events: dict[str, Event] = Field(
        {}, description="name → event, told apart by kind; a child scenario changes one key of an inherited event or "
                        "switches it off (enabled: false)")
    replay: Replay = Field(Replay(), description="the window replayed against the record service")
    corpus: CorpusHistory = Field(
        CorpusHistory(), description="the record's history at the window's start (corpus.parquet) and the age of "
                                     "the documents the window reads")
    call_patterns: CallPatterns = Field(
        CallPatterns(), description="the calls a professional's software makes per consultation and deposit (the "
                                    "load driver's interactions)")
    uplift: Annotated[float, Field(gt=-1.0, le=10.0)] = Field(
        0.0, description="every expected volume times (1 + uplift): 0.3 says 'the same traffic, +30 %'")
    assumptions: dict[str, Assumption] = Field(
        {}, description="name → a value no source gives, with its low-central-high range; the run's level picks one "
                        "and writes it at its path(s)")
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

    def events_in_period(self) -> tuple[list[str], list[str]]:
        """Names of the active events that touch the period, and of those wholly before or after it."""
        inside, outside = [], []
        for name, event in self.active_events().items():
            first, last = _event_days(event)
            touches = first <= self.period.end and (last is None or last >= self.period.start)
            (inside if touches else outside).append(name)
        return sorted(inside), sorted(outside)

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


def _event_days(event: Event) -> tuple[dt.date, dt.date | None]:
    """The first and last day an event acts on the traffic (None: it goes on, as an obligation does)."""
    if isinstance(event, Outage):
        # the backlog and the retries go on after the recovery: a day beyond it at least
        return event.start.date(), (event.start + dt.timedelta(minutes=event.duration_minutes, days=1)).date()
    if isinstance(event, LabStrike):
        return event.start, event.end + dt.timedelta(days=event.catch_up_days)
    if isinstance(event, Epidemic):
        return event.start, event.end
    if isinstance(event, Campaign):
        return event.date, event.date + dt.timedelta(days=event.response_curve.max_days + 1)
    if isinstance(event, BackLoad):
        return event.start, None
    return event.date, None  # an obligation stays


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
    """The key of ``node`` spelled ``part`` (a date key is written YYYY-MM-DD in a path)."""
    for key in node:
        if str(key) == part:
            return key
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


class _ScenarioLoader(yaml.SafeLoader):
    """Safe YAML with two changes: dates stay text (the models check them, with the key path: 2025-02-30
    is an error naming its key, not a crash), and a key written twice in one mapping is an error."""


_ScenarioLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _unique_mapping(loader: _ScenarioLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is written twice in this mapping (first on line {seen[key].line + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_ScenarioLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read ({getattr(error, 'strerror', None) or error})") from None
    try:
        data = yaml.load(text, Loader=_ScenarioLoader)  # noqa: S506 - a SafeLoader subclass
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


# the ``kind`` of each model of the Event union, in its order: a new event model brings its own
_EVENT_KINDS = tuple(get_args(model.model_fields["kind"].annotation)[0] for model in get_args(get_args(Event)[0]))


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
        elif problem["type"] == "union_tag_not_found" and location[:1] == ("events",):
            message = f"an event needs a kind: one of {', '.join(_EVENT_KINDS)}"
        elif problem["type"] == "union_tag_invalid" and location[:1] == ("events",):
            message = f"unknown event kind: expected one of {', '.join(_EVENT_KINDS)}"
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
