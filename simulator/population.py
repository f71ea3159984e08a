"""Who is who: the patients, professionals and facilities behind the counts, with real-shaped ids.

Nobody is stored: person ``i`` of a pool is a number, and its INS, RPPS or FINESS is computed
from that number when a schedule or a corpus needs it (see :mod:`segur.identifiers`). Volumes
are heavy-tailed on both sides: a few producers write much of a sector's documents, and a few
patients (chronic care) receive many of them.
"""

from __future__ import annotations

import numpy as np

from segur.identifiers import finess_for_facilities, ins_for_patients, rpps_for_professionals
from simulator.scenario import PROFESSIONAL_SECTORS, Scenario

# share of the patient pool's weight: index ** PATIENT_SKEW concentrates documents on low indexes
# (before the identifier scramble): the top 1 % of patients receive about 10 % of the documents
_PATIENT_SKEW = 2.0


class Population:
    """The scaled pools of a scenario and the identifiers of their members."""

    def __init__(self, scenario: Scenario, rng: np.random.Generator):
        self.scenario = scenario
        patients = scenario.patients
        self.patient_pool = max(1, round(patients.profiles * (1.0 - patients.opposition_rate) * scenario.scale))
        self.producers: dict[str, int] = {}
        self.staff: dict[str, int] = {}  # professionals per producer (1 for a professional producer)
        self._producer_cdf: dict[str, np.ndarray] = {}
        self._professional_offset: dict[str, int] = {}
        self._facility_offset: dict[str, int] = {}
        professional_offset = facility_offset = 0
        for name in PROFESSIONAL_SECTORS:
            sector = scenario.sectors[name]
            count = max(1, round(sector.producers * scenario.scale))
            staff = max(1, round(sector.professionals_per_producer)) if sector.producer_kind == "facility" else 1
            self.producers[name], self.staff[name] = count, staff
            weights = rng.lognormal(0.0, sector.size_sigma, count)
            self._producer_cdf[name] = np.cumsum(weights) / weights.sum()
            self._professional_offset[name] = professional_offset
            self._facility_offset[name] = facility_offset
            professional_offset += count * staff
            facility_offset += count if sector.producer_kind == "facility" else 0

    # --- drawing members -------------------------------------------------------------------

    def draw_patients(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum((rng.random(n) ** _PATIENT_SKEW * self.patient_pool).astype(np.int64), self.patient_pool - 1)

    def draw_producers(self, rng: np.random.Generator, sector: str, n: int) -> np.ndarray:
        """Producers of a sector, in proportion to their (heavy-tailed) volume."""
        cdf = self._producer_cdf[sector]
        return np.minimum(np.searchsorted(cdf, rng.random(n)), cdf.size - 1)

    def draw_authors(self, rng: np.random.Generator, sector: str, producers: np.ndarray) -> np.ndarray:
        """A professional working for each producer, as a global professional number."""
        staff = self.staff[sector]
        return self._professional_offset[sector] + producers * staff + rng.integers(0, staff, producers.size)

    def draw_professionals(self, rng: np.random.Generator, sector: str, n: int) -> np.ndarray:
        """Professionals of a sector, each as likely as its producer's volume (for reads at visits)."""
        return self.draw_authors(rng, sector, self.draw_producers(rng, sector, n))

    # --- identifiers -----------------------------------------------------------------------

    def ins(self, patients: np.ndarray, as_bytes: bool = False) -> np.ndarray:
        return ins_for_patients(patients, self.patient_pool, as_bytes)

    def rpps(self, professionals: np.ndarray, as_bytes: bool = False) -> np.ndarray:
        return rpps_for_professionals(professionals, as_bytes)

    def finess(self, sector: str, producers: np.ndarray, as_bytes: bool = False) -> np.ndarray | None:
        """FINESS of the producers when they are facilities, else None."""
        if self.scenario.sectors[sector].producer_kind != "facility":
            return None
        return finess_for_facilities(self._facility_offset[sector] + producers, as_bytes)
