"""Interactions, not requests: what a professional's software sends for one consultation or one deposit.

A schedule row is an interaction (a professional consulting a patient's record at a visit, a
deposit, a document opened, a patient's action). The driver expands it into the protocol's calls,
in order, each call leaving when the previous one has answered (a professional's software waits),
and measures the interaction as a whole beside each call. The call patterns come from the DMP's
published usage (ANS PDSm4DMP guide, "exemples d'usage DMP"; docs/xds-sources.md §3):

========================  =========================================  ==============================================
interaction               ``xds`` (professionals over XDS.b)          ``fhir`` (professionals over PDSm4DMP)
========================  =========================================  ==============================================
consultation, first visit  TD0.2, ITI-18 FindDocuments (2 years)     TD0.2 (GET Patient?identifier), ITI-67 with
                                                                      ``period=ge`` (2 years)
consultation, later visit  TD0.2, ITI-18 FindSubmissionSets (since    TD0.2, ITI-67 with ``date=ge`` the last visit
                           the last visit), GetAssociations,          (the guide's ``_lastUpdated``, which it calls
                           GetDocumentsAndAssociations by 20          an open question, is not served)
document view              ITI-43                                     ITI-68
deposit                    TD0.2, ITI-41 (MTOM)                       TD0.2, ITI-65
========================  =========================================  ==============================================

Patients always use the FHIR API (Mon espace santé's own). A TD0.2 that answers "no open record" or
"not authorised" (the patient blocked this professional) ends the interaction there, as the
professional's software stops; that is a served interaction, not a failure.

The protocol mixes: ``dmp`` (professionals over XDS.b, patients over FHIR: the platform's traffic
today), ``xds`` (the professionals' XDS.b traffic alone: patients' rows are not replayed) and
``fhir`` (professionals over PDSm4DMP, patients over FHIR: the what-if of moving professionals).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import zlib
from dataclasses import dataclass, fields

PROTOCOLS = {
    "dmp": "professionals over IHE XDS.b (SOAP, VIHF), patients over FHIR: the platform's mix",
    "xds": "professionals over IHE XDS.b only (patients' actions are not replayed)",
    "fhir": "professionals over FHIR (ANS PDSm4DMP), patients over FHIR",
}

# (actor kind, schedule operation) -> the interaction's name
_NAMES = {("professional", "search"): "consultation", ("professional", "retrieve"): "document view",
          ("professional", "deposit"): "deposit", ("patient", "search"): "patient session",
          ("patient", "retrieve"): "patient document view", ("patient", "deposit"): "patient upload",
          ("patient", "history"): "access history", ("patient", "mask"): "mask", ("patient", "delete"): "delete",
          ("patient", "block"): "block"}


@dataclass(frozen=True)
class CallPatterns:
    """The parameters of the professionals' call patterns (the scenario's ``call_patterns``; sources there).

    ``first_visit_share``: share (0-1) of consultations that open a patient's record for the first time in the
    professional's software; ``find_documents_years``: how far back a first opening looks (years);
    ``batch_size``: DocumentEntries per GetDocumentsAndAssociations; ``days_since_last_visit``: mean days since the
    professional's previous visit (a later visit asks what came since; exponential); ``access_check_before_deposit``:
    a deposit starts with TD0.2."""

    first_visit_share: float = 0.3
    find_documents_years: float = 2.0
    batch_size: int = 20
    days_since_last_visit: float = 90.0
    access_check_before_deposit: bool = True

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> "CallPatterns":
        """The patterns a schedule carries in its metadata (``call_patterns``, JSON), defaults otherwise."""
        given = json.loads(metadata.get("call_patterns", "{}") or "{}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in given.items() if k in known})

    def first_visit(self, row: dict) -> bool:
        """Whether this consultation is a first opening: drawn from the row's actor, patient and time (the same
        row is the same visit in every process and every loop of the window)."""
        return _uniform(row, "visit") < self.first_visit_share

    def last_visit(self, row: dict, now: dt.datetime) -> dt.datetime:
        """When the professional last saw the patient (a later visit): exponential, mean ``days_since_last_visit``,
        at least an hour before ``now``."""
        days = -math.log(max(1.0 - _uniform(row, "since"), 1e-12)) * self.days_since_last_visit
        return now - dt.timedelta(days=max(days, 1 / 24))

    def find_from(self, now: dt.datetime) -> dt.datetime:
        return now - dt.timedelta(days=365.25 * self.find_documents_years)


SCENARIO_ZONE = dt.timezone(dt.timedelta(hours=1))  # the scenario's clock is France's (winter time), as seeding dates it


def scenario_clock(metadata: dict[str, str]):
    """``row -> datetime``: the scenario instant a row stands for (the window's start + its offset, which counts the
    loops of the window), so that query bounds and deposit dates agree with the seeded corpus's dates whatever day
    the replay runs. Without a window start in the metadata (an older schedule), the wall clock."""
    start = metadata.get("window_start")
    if not start:
        return lambda row: dt.datetime.now(dt.timezone.utc)
    opened = dt.datetime.fromisoformat(start)
    opened = opened.replace(tzinfo=SCENARIO_ZONE) if opened.tzinfo is None else opened
    return lambda row: opened + dt.timedelta(seconds=float(row.get("offset_s") or 0.0))


def _uniform(row: dict, salt: str) -> float:
    key = f"{salt}|{row.get('actor_id')}|{row.get('patient_ins')}|{row.get('offset_s')}".encode()
    return zlib.crc32(key) / 2**32


def route(protocol: str, row: dict) -> str:
    """The interface a row's interaction goes through: ``xds`` or ``fhir``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")
    return "xds" if protocol in ("dmp", "xds") and row["actor_kind"] == "professional" else "fhir"


def replayed(protocol: str, actor_kind: str) -> bool:
    """Whether a row of this actor kind is replayed under ``protocol`` (``xds``: professionals only)."""
    return protocol != "xds" or actor_kind == "professional"


def interaction_name(row: dict) -> str:
    return _NAMES.get((row["actor_kind"], row["operation"]), row["operation"])


def operation_of(request_type: str) -> str | None:
    """The schedule operation an interaction's Locust type plays (``consultation (xds)`` -> ``search``), None for a
    type that is no interaction's (a call's HTTP method, ``NOT SENT``)."""
    name, bracket, _ = request_type.rpartition(" (")
    if not bracket:
        return None
    return next((operation for (_, operation), interaction in _NAMES.items() if interaction == name), None)


def locust_type(row: dict, protocol: str) -> str:
    """The request type an interaction has in Locust's statistics, e.g. ``consultation (xds)``."""
    return f"{interaction_name(row)} ({route(protocol, row)})"
