"""The replay window: each operation of the busiest hour as one row, and the corpus its reads need.

The counts say *how many* operations happen in each minute; this module says *which*: who
deposits what for whom, which document a patient opens after a notification, what a doctor
fetches after searching a patient's record. Every read targets a document that exists when
the read is sent: one deposited earlier in the window, or one of the record's history before the
window opens (:mod:`simulator.history`: the corpus, loaded into the service before the replay).

Reads aim by age: a patient opens the document they were just notified of (the consultation
delay: in the window, or a recent one of the history); a professional at a visit, or a patient
browsing, fetches documents aged by ``corpus.read_age`` (lognormal, its median an assumption
with a range); masks and blocks aim the same way, deletes at the patient's own uploads. The
searched patients' records (``replay.history_documents_per_patient``) are drawn from the last
``call_patterns.find_documents_years`` of the history as it was deposited. Every one of these
documents is *taken* from the history (counted in it): ``ReplayPlan.corpus`` holds them (the
"needed" rows of corpus.parquet), ``ReplayPlan.history`` what is left of the history.

Rows are built as numpy columns (numbers: person numbers, document serials, code indexes) and
turned into identifiers and strings only once, at the end.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from segur.errors import InputError
from simulator.engine import OPERATIONS, Traffic
from simulator.history import PATIENT_POOL, PROFESSIONAL_POOL, History
from simulator.patients import consultation_delay
from simulator.population import Population
from simulator.scenario import PROFESSIONAL_SECTORS, SECTORS, DocumentType

PATIENT = SECTORS.index("patient")


@dataclass(frozen=True)
class Window:
    start_minute: int  # from the start of the simulated period
    minutes: int
    start: dt.datetime

    @property
    def end_minute(self) -> int:
        return self.start_minute + self.minutes


def busiest_window(traffic: Traffic, minutes: int) -> Window:
    """The window with the most operations, starting on a boundary of ``min(minutes, 60)`` minutes."""
    total = traffic.per_minute
    if minutes > total.size:
        raise InputError(f"the replay window ({minutes} min) is longer than the simulated period")
    step = min(minutes, 60)
    cumulative = np.concatenate([[0], np.cumsum(total)])
    starts = np.arange(0, total.size - minutes + 1, step)
    best = int(starts[np.argmax(cumulative[starts + minutes] - cumulative[starts])])
    return Window(best, minutes, traffic.calendar.moment(best))


def fixed_window(traffic: Traffic, start: dt.datetime, minutes: int) -> Window:
    first = traffic.calendar.minute_index(start)
    if first < 0 or first + minutes > traffic.calendar.minutes:
        raise InputError(f"replay.start {start} (+{minutes} min) is outside the simulated period "
                         f"{traffic.calendar.start} .. {traffic.calendar.end}")
    return Window(first, minutes, start)


class _TypeTable:
    """Every document type of the scenario, numbered, with the sampling data of each sector."""

    def __init__(self, by_sector: dict[str, list[DocumentType]]):
        self.codes: list[str] = []
        self._sectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._median, self._sigma, self._low, self._high = [], [], [], []
        for sector, types in by_sector.items():
            indexes = []
            for kind in types:
                indexes.append(len(self.codes))
                self.codes.append(kind.code)
                self._median.append(kind.size.median_kb * 1024)
                self._sigma.append(kind.size.sigma)
                self._low.append(kind.size.min_kb * 1024)
                self._high.append(kind.size.max_kb * 1024)
            shares = np.array([kind.share for kind in types], dtype=np.float64)
            self._sectors[sector] = (np.array(indexes), np.cumsum(shares) / shares.sum())
        self._median, self._sigma = np.array(self._median), np.array(self._sigma)
        self._low, self._high = np.array(self._low), np.array(self._high)

    def draw(self, rng: np.random.Generator, sector: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Type indexes and sizes in bytes (lognormal per type, clipped) of ``n`` new documents."""
        indexes, cdf = self._sectors[sector]
        types = indexes[np.minimum(np.searchsorted(cdf, rng.random(n)), cdf.size - 1)]
        sizes = self._median[types] * np.exp(self._sigma[types] * rng.standard_normal(n))
        return types.astype(np.int16), np.clip(sizes, self._low[types], self._high[types]).astype(np.int64)

    def mean_size(self, sector: str) -> float:
        """Mean size in bytes of a sector's documents as :meth:`draw` makes them (clipped lognormal, by quadrature)."""
        indexes, cdf = self._sectors[sector]
        shares = np.diff(np.concatenate([[0.0], cdf]))
        z = np.linspace(-8.0, 8.0, 4001)
        weight = np.exp(-z * z / 2)
        weight /= weight.sum()
        sizes = np.clip(self._median[indexes, None] * np.exp(self._sigma[indexes, None] * z[None, :]),
                        self._low[indexes, None], self._high[indexes, None])
        return float((shares * (sizes * weight[None, :]).sum(axis=1)).sum())


class _Columns:
    """Columns accumulated chunk by chunk, concatenated once."""

    def __init__(self, **defaults):
        self._defaults = defaults
        self._chunks: dict[str, list[np.ndarray]] = {name: [] for name in defaults}

    def add(self, n: int, **values) -> None:
        unknown = set(values) - set(self._defaults)
        if unknown:
            raise KeyError(f"unknown columns {unknown}")
        for name, default in self._defaults.items():
            value = values.get(name, default)
            self._chunks[name].append(np.broadcast_to(np.asarray(value), (n,)).copy() if np.ndim(value) == 0 else np.asarray(value))

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: (np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.asarray(self._defaults[name]).dtype))
                for name, chunks in self._chunks.items()}


def _documents_of(sectors: np.ndarray, types: _TypeTable, population: Population, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Type indexes, sizes (bytes), authors and producers of documents deposited by ``sectors`` (one per
    document; shape (n,) each): a professional's drawn from the sector's producers, -1 for a patient's upload."""
    n = sectors.size
    kinds, sizes = np.zeros(n, np.int16), np.zeros(n, np.int64)
    authors, producers = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    for index, name in enumerate(SECTORS):
        mine = np.flatnonzero(sectors == index)
        if mine.size == 0:
            continue
        kinds[mine], sizes[mine] = types.draw(rng, name, mine.size)
        if index != PATIENT:
            producers[mine] = population.draw_producers(rng, name, mine.size)
            authors[mine] = population.draw_authors(rng, name, producers[mine])
    return kinds, sizes, authors, producers


@dataclass
class ReplayPlan:
    """The schedule and the corpus as numpy columns (see :mod:`simulator.outputs` for the files).

    ``corpus`` holds the documents the window's operations need (taken from ``history``);
    ``history`` what is left of the record's history, turned into rows by :meth:`rest`.
    """

    window: Window
    rows: dict[str, np.ndarray]
    corpus: dict[str, np.ndarray]
    type_codes: list[str]
    population: Population
    history: History | None = None
    types: "_TypeTable | None" = None
    first_rest_serial: int = 0

    @property
    def rest_documents(self) -> int:
        return int(self.history.remaining.sum()) if self.history is not None else 0

    def rest(self, chunk_rows: int = 262_144, limit: int | None = None):
        """The history's documents no operation needs, in a random (seeded) order, as corpus columns by chunks
        (``limit``: a uniform sample of at most that many).

        Patients, types, sizes, producers and authors are drawn here, as for the needed ones; the
        moments, at each day's hours (:meth:`History.moments`).
        """
        history, population, types = self.history, self.population, self.types
        rng = np.random.default_rng([population.scenario.seed, 2])
        history.rng = rng
        cells = history.rest_cells(limit)
        serial = self.first_rest_serial
        for first in range(0, cells.size, chunk_rows):
            chunk = cells[first:first + chunk_rows].astype(np.int64)
            n = chunk.size
            days, sectors = chunk // len(SECTORS), (chunk % len(SECTORS)).astype(np.int8)
            moments = history.moments(days, sectors)
            kinds, sizes, authors, producers = _documents_of(sectors, types, population, rng)
            yield {"document": np.arange(serial, serial + n, dtype=np.int64),
                   "patient": population.draw_patients(rng, n), "type": kinds, "size": sizes, "age_s": -moments,
                   "author": authors, "sector": sectors, "producer": producers}
            serial += n


class _Builder:
    def __init__(self, traffic: Traffic, window: Window, rng: np.random.Generator):
        scenario = traffic.scenario
        self.traffic, self.window, self.rng = traffic, window, rng
        self.population = Population(scenario, rng)
        self.types = _TypeTable({**{s: scenario.sectors[s].document_types for s in PROFESSIONAL_SECTORS},
                                 "patient": scenario.patients.upload_types})
        self.next_serial = 0
        self.rows = _Columns(offset_s=0.0, operation=np.int8(0), sector=np.int8(0), actor=np.int64(-1),
                             producer=np.int64(-1), patient=np.int64(-1), document=np.int64(-1),
                             type=np.int16(-1), size=np.int64(0), target_professional=np.int64(-1))
        self.corpus = _Columns(document=np.int64(0), patient=np.int64(0), type=np.int16(0), size=np.int64(0),
                               age_s=0.0, author=np.int64(-1), sector=np.int8(0), producer=np.int64(-1))
        self.history = History(traffic, window.start_minute, window.start,
                               np.random.default_rng([scenario.seed, 3]))

    # --- helpers ----------------------------------------------------------------------------

    def times(self, operation: str, sector: int, minute_counts: np.ndarray | None = None) -> np.ndarray:
        """Send offsets (seconds from the window start, float) of one kind of operation.

        Uniform in each minute, except professional deposits that a connector flushes on a
        boundary (``Traffic.flushed``): those leave in the minute's first ``flush_seconds``.
        """
        window = slice(self.window.start_minute, self.window.end_minute)
        if minute_counts is None:
            minute_counts = self.traffic.counts[OPERATIONS.index(operation), sector, window]
        minutes = np.repeat(np.arange(minute_counts.size), minute_counts)
        within = self.rng.random(minutes.size) * 60.0
        if operation == "deposit" and sector < len(PROFESSIONAL_SECTORS):
            batching = self.traffic.scenario.sectors[PROFESSIONAL_SECTORS[sector]].batching
            flushed = self.traffic.flushed[sector, window]
            if batching is not None and flushed.any():
                # the first `flushed[m]` documents of each minute m are the flush
                first = np.repeat(np.cumsum(minute_counts) - minute_counts, minute_counts)
                in_flush = np.arange(minutes.size) - first < np.repeat(flushed, minute_counts)
                within[in_flush] = self.rng.random(int(in_flush.sum())) * batching.flush_seconds
        return np.sort(minutes * 60.0 + within)

    def serials(self, n: int) -> np.ndarray:
        first, self.next_serial = self.next_serial, self.next_serial + n
        return np.arange(first, self.next_serial, dtype=np.int64)

    def past_documents(self, patients: np.ndarray, created_s: np.ndarray, pool: np.ndarray = PROFESSIONAL_POOL,
                       days: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Take documents of these patients out of the history, deposited at ``created_s`` (seconds from the
        window's start, negative; NaN: any moment of ``days``), from a sector of ``pool``.

        Returns serials, types, sizes and authors (-1 for a patient's upload).
        """
        n = patients.size
        sectors, created = self.history.take(np.asarray(created_s, dtype=np.float64), pool, days)
        serial = self.serials(n)
        types, sizes, authors, producers = _documents_of(sectors, self.types, self.population, self.rng)
        self.corpus.add(n, document=serial, patient=patients, type=types, size=sizes, age_s=-created,
                        author=authors, sector=sectors.astype(np.int8), producer=producers)
        return serial, types, sizes, authors

    def aimed(self, read_offsets_s: np.ndarray) -> np.ndarray:
        """Creation moments of the documents read at these offsets, by ``corpus.read_age``."""
        return self.history.read_targets(np.asarray(read_offsets_s, dtype=np.float64))

    # --- the operations ---------------------------------------------------------------------

    def professional_deposits(self) -> dict[str, np.ndarray]:
        """Every deposit of the window; returns the professional ones (time-sorted) for consultations."""
        made = {"time": [], "patient": [], "document": [], "type": [], "size": []}
        for index, name in enumerate(PROFESSIONAL_SECTORS):
            times = self.times("deposit", index)
            n = times.size
            producers = self.population.draw_producers(self.rng, name, n)
            patients = self.population.draw_patients(self.rng, n)
            types, sizes = self.types.draw(self.rng, name, n)
            serial = self.serials(n)
            self.rows.add(n, offset_s=times, operation=np.int8(OPERATIONS.index("deposit")), sector=np.int8(index),
                          actor=self.population.draw_authors(self.rng, name, producers), producer=producers,
                          patient=patients, document=serial, type=types, size=sizes)
            for key, value in zip(made, (times, patients, serial, types, sizes)):
                made[key].append(value)
        merged = {key: np.concatenate(values) for key, values in made.items()}
        order = np.argsort(merged["time"], kind="stable")
        return {key: value[order] for key, value in merged.items()}

    def patient_uploads(self) -> None:
        times = self.times("deposit", PATIENT)
        patients = self.population.draw_patients(self.rng, times.size)
        types, sizes = self.types.draw(self.rng, "patient", times.size)
        self.rows.add(times.size, offset_s=times, operation=np.int8(OPERATIONS.index("deposit")), sector=np.int8(PATIENT),
                      actor=patients, patient=patients, document=self.serials(times.size), type=types, size=sizes)

    def patient_reads(self, deposits: dict[str, np.ndarray]) -> None:
        """Consultations (search, then open the notified document) and browsing sessions."""
        w = self.window
        searches = self.traffic.counts[OPERATIONS.index("search"), PATIENT, w.start_minute:w.end_minute]
        caused = np.minimum(self.traffic.consultations[w.start_minute:w.end_minute], searches)
        self._consultations(self.times("search", PATIENT, caused), deposits)

        browsing_times = self.times("search", PATIENT, searches - caused)
        browsing_patients = self.population.draw_patients(self.rng, browsing_times.size)
        self.rows.add(browsing_times.size, offset_s=browsing_times, operation=np.int8(OPERATIONS.index("search")),
                      sector=np.int8(PATIENT), actor=browsing_patients, patient=browsing_patients)
        retrieves = self.traffic.counts[OPERATIONS.index("retrieve"), PATIENT, w.start_minute:w.end_minute]
        self._follow_up_retrieves(self.times("retrieve", PATIENT, np.maximum(retrieves - caused, 0)), browsing_times,
                                  browsing_patients, actors=None, sector=PATIENT, delay=(5.0, 120.0))

    def _consultations(self, times: np.ndarray, deposits: dict[str, np.ndarray]) -> None:
        n = times.size
        kernel_cdf = np.cumsum(consultation_delay(self.traffic.scenario.patients))
        delay_s = (np.searchsorted(kernel_cdf, self.rng.random(n)) + self.rng.random(n)) * 60.0
        target_time = times - delay_s
        # the notified document: deposited in the window before the target time, if any
        latest = np.searchsorted(deposits["time"], target_time, side="right") - 1
        in_window = latest >= 0
        patients, documents = np.zeros(n, np.int64), np.zeros(n, np.int64)
        types, sizes = np.zeros(n, np.int16), np.zeros(n, np.int64)
        pick = latest[in_window]
        patients[in_window], documents[in_window] = deposits["patient"][pick], deposits["document"][pick]
        types[in_window], sizes[in_window] = deposits["type"][pick], deposits["size"][pick]
        # otherwise a document written before the window opened
        older = ~in_window
        patients[older] = self.population.draw_patients(self.rng, int(older.sum()))
        documents[older], types[older], sizes[older], _ = self.past_documents(patients[older], target_time[older])
        search, retrieve = np.int8(OPERATIONS.index("search")), np.int8(OPERATIONS.index("retrieve"))
        self.rows.add(n, offset_s=times, operation=search, sector=np.int8(PATIENT), actor=patients, patient=patients)
        # the document is opened a few seconds later: in the next window for the last searches
        opened = times + self.rng.uniform(2.0, 20.0, n)
        keep = opened < self.window.minutes * 60.0
        self.rows.add(int(keep.sum()), offset_s=opened[keep], operation=retrieve, sector=np.int8(PATIENT),
                      actor=patients[keep], patient=patients[keep], document=documents[keep], type=types[keep],
                      size=sizes[keep])

    def _follow_up_retrieves(self, times: np.ndarray, search_times: np.ndarray, search_patients: np.ndarray,
                             actors: np.ndarray | None, sector: int, delay: tuple[float, float],
                             producers: np.ndarray | None = None) -> None:
        """Retrieves at ``times``, each of an older document of the patient searched ``delay`` seconds before.

        A retrieve with no search in that span followed a search made before the window opened:
        it opens a document of a patient of its own.
        """
        count = times.size
        if count == 0:
            return
        low = np.searchsorted(search_times, times - delay[1], side="left")
        high = np.searchsorted(search_times, times - delay[0], side="right")
        followed = high > low
        parent = low + (self.rng.random(count) * (high - low)).astype(np.int64)
        parent = np.where(followed, parent, 0)
        patients = np.where(followed, search_patients[parent] if search_patients.size else -1,
                            self.population.draw_patients(self.rng, count))
        if actors is None:
            who = patients
        else:
            orphans = self.population.draw_professionals(self.rng, PROFESSIONAL_SECTORS[sector], count)
            who = np.where(followed, actors[parent] if actors.size else -1, orphans)
        producer = np.int64(-1) if producers is None or producers.size == 0 else np.where(followed, producers[parent], -1)
        documents, types, sizes, _ = self.past_documents(patients, self.aimed(times))
        self.rows.add(count, offset_s=times, operation=np.int8(OPERATIONS.index("retrieve")), sector=np.int8(sector),
                      actor=who, producer=producer, patient=patients, document=documents, type=types, size=sizes)

    def professional_reads(self) -> None:
        w = self.window
        for index, name in enumerate(PROFESSIONAL_SECTORS):
            times = self.times("search", index)
            producers = self.population.draw_producers(self.rng, name, times.size)
            actors = self.population.draw_authors(self.rng, name, producers)
            patients = self.population.draw_patients(self.rng, times.size)
            self.rows.add(times.size, offset_s=times, operation=np.int8(OPERATIONS.index("search")), sector=np.int8(index),
                          actor=actors, producer=producers, patient=patients)
            self._follow_up_retrieves(self.times("retrieve", index), times, patients, actors, index, (1.0, 30.0), producers)
            # the rest of each searched patient's record: found by the search, gives the index its depth
            depth = self.rng.poisson(self.traffic.scenario.replay.history_documents_per_patient, times.size)
            owners = np.repeat(patients, depth)
            years = self.traffic.scenario.call_patterns.find_documents_years
            self.past_documents(owners, np.full(owners.size, np.nan), PROFESSIONAL_POOL,
                                self.history.record_days(owners.size, years))

    def patient_history(self) -> None:
        """Patients reading their record's access history (who read what, when)."""
        times = self.times("history", PATIENT)
        patients = self.population.draw_patients(self.rng, times.size)
        self.rows.add(times.size, offset_s=times, operation=np.int8(OPERATIONS.index("history")),
                      sector=np.int8(PATIENT), actor=patients, patient=patients)

    def patient_controls(self) -> None:
        """Masking a professional's document, deleting one's own upload, blocking a professional."""
        for operation in ("mask", "delete", "block"):
            times = self.times(operation, PATIENT)
            n = times.size
            patients = self.population.draw_patients(self.rng, n)
            code = np.int8(OPERATIONS.index(operation))
            if operation == "delete":  # only the author may delete: patients delete their own uploads
                serial, types, sizes, _ = self.past_documents(patients, self.aimed(times), PATIENT_POOL)
                self.rows.add(n, offset_s=times, operation=code, sector=np.int8(PATIENT), actor=patients,
                              patient=patients, document=serial, type=types, size=sizes)
                continue
            serial, types, sizes, authors = self.past_documents(patients, self.aimed(times))
            if operation == "mask":
                self.rows.add(n, offset_s=times, operation=code, sector=np.int8(PATIENT), actor=patients,
                              patient=patients, document=serial, type=types, size=sizes)
            else:  # block the author of one of their documents
                self.rows.add(n, offset_s=times, operation=code, sector=np.int8(PATIENT), actor=patients,
                              patient=patients, target_professional=authors)


def build_replay(traffic: Traffic, window: Window) -> ReplayPlan:
    """Every operation of the window, time-ordered, and the corpus its reads target."""
    builder = _Builder(traffic, window, np.random.default_rng([traffic.scenario.seed, 1]))
    deposits = builder.professional_deposits()
    builder.patient_uploads()
    builder.patient_reads(deposits)
    builder.professional_reads()
    builder.patient_controls()
    builder.patient_history()
    rows = builder.rows.arrays()
    order = np.argsort(rows["offset_s"], kind="stable")
    rows = {name: column[order] for name, column in rows.items()}
    return ReplayPlan(window, rows, builder.corpus.arrays(), builder.types.codes, builder.population,
                      builder.history, builder.types, builder.next_serial)
