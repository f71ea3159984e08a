"""The files of a simulation run: monthly.csv, summary.json, counts.parquet, schedule.parquet, corpus.parquet.

Parquet files are written in row groups so that a reader (the load driver) can stream them;
the schedule is sorted by send time.

corpus.parquet is the record at the replay window's start (:mod:`simulator.history`): every
document deposited from ``corpus.history_start`` up to the window's start, at the scenario's
scale, one row each. Columns: ``document_id`` (masterIdentifier), ``patient_ins``, ``type_code``,
``size_bytes``, ``date`` (when it was deposited), ``author_kind`` (professional or patient),
``author_id`` (RPPS, or the patient's INS for an upload), ``author_sector``, ``facility_id``
(FINESS or null), and ``needed`` (bool): True for the documents the window's operations target
(retrieves, masks, deletes, blocks' authors) and the searched patients' records, False for the
rest of the history. **Order**: the needed rows come first (by date), then the others in a random
order fixed by the scenario's seed: a loader seeds every needed row and, for a bigger corpus,
the rows after them in file order up to its budget (any prefix is a uniform sample of the
history). The file's metadata has ``needed_documents`` (how many rows lead), ``history_documents``
(the whole history), ``rows`` (``all``; ``needed`` when only the needed rows are written:
``corpus.rows: needed``; ``sample`` when the history is larger than ``corpus.max_rows``: the
needed rows, then a uniform random sample of the others up to max_rows rows in all) and
``history_start``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simulator.calendar import MINUTES_PER_DAY
from simulator.engine import OPERATIONS, READS, Traffic
from simulator.history import national_storage
from simulator.published import FIGURES, model_value
from simulator.scenario import PROFESSIONAL_SECTORS, SECTORS
from simulator.schedule import PATIENT, ReplayPlan

ROW_GROUP = 65_536
BUCKETS = {"minute": 1, "hour": 60}


# --- aggregates ------------------------------------------------------------------------------


def daily_counts(traffic: Traffic) -> np.ndarray:
    """(operations, sectors, days)."""
    return traffic.daily


def monthly_counts(traffic: Traffic) -> tuple[list[str], np.ndarray]:
    """Month labels and (months, operations, sectors) counts."""
    return traffic.monthly


def professional_deposits_by_month(traffic: Traffic) -> dict[str, int]:
    months, table = monthly_counts(traffic)
    sectors = [SECTORS.index(s) for s in PROFESSIONAL_SECTORS]
    return {month: int(table[i, OPERATIONS.index("deposit"), sectors].sum()) for i, month in enumerate(months)}


# --- files ---------------------------------------------------------------------------------


def write_monthly_csv(traffic: Traffic, path: Path) -> None:
    months, table = monthly_counts(traffic)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["month", "sector", "operation", "count"])
        for i, month in enumerate(months):
            for s, sector in enumerate(SECTORS):
                for o, operation in enumerate(OPERATIONS):
                    writer.writerow([month, sector, operation, int(table[i, o, s])])


def _dictionary(indexes: np.ndarray, values: list[str] | tuple[str, ...]) -> pa.DictionaryArray:
    """Strings stored once each; a negative index is a null."""
    dictionary = pa.array(list(values), pa.string())
    mask = indexes < 0
    if not mask.any():
        return pa.DictionaryArray.from_arrays(pa.array(indexes.astype(np.int16)), dictionary)
    return pa.DictionaryArray.from_arrays(pa.array(np.where(mask, 0, indexes).astype(np.int16), mask=mask), dictionary)


def write_counts_parquet(traffic: Traffic, path: Path, bucket: str) -> int:
    """Counts per bucket x sector x operation (non-zero cells only, in time order); returns the row count."""
    width = BUCKETS[bucket]
    ops, sectors, minutes = traffic.counts.shape
    # (bucket, sector, operation) layout: the non-zero cells then come out already in time order
    counts = traffic.counts if width == 1 else traffic.counts.reshape(ops, sectors, minutes // width, width).sum(axis=3)
    flat = np.ascontiguousarray(counts.transpose(2, 1, 0)).ravel()
    cells = np.flatnonzero(flat)
    start_s = np.datetime64(traffic.calendar.start, "s").astype(np.int64)
    table = pa.table({
        "bucket_start": pa.array(start_s + cells // (sectors * ops) * (width * 60), pa.timestamp("s")),
        "sector": _dictionary((cells // ops) % sectors, SECTORS),
        "operation": _dictionary(cells % ops, OPERATIONS),
        "count": pa.array(flat[cells], pa.int64()),
    })
    pq.write_table(table, path, row_group_size=ROW_GROUP * 16, compression="zstd")
    return table.num_rows


def document_ids(plan: ReplayPlan, serials: np.ndarray) -> pa.Array:
    """masterIdentifier of each document serial: an OID unique to the scenario, seed and window."""
    scenario = plan.population.scenario
    tag = zlib.crc32(f"{scenario.name}|{plan.window.start.isoformat()}|{scenario.scale}".encode())
    prefix = f"urn:oid:1.2.250.1.999.{scenario.seed}.{tag}."
    mask = serials < 0
    text = pc.cast(pa.array(np.where(mask, 0, serials)), pa.string())
    joined = pc.binary_join_element_wise(pa.scalar(prefix), text, "")
    return pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), joined)


def _strings(fixed_width: np.ndarray, missing: np.ndarray) -> pa.Array:
    """Fixed-width ASCII bytes to an Arrow string column, null where ``missing``."""
    return pa.array(fixed_width, pa.binary(), mask=missing).cast(pa.string())


def _identifiers(plan: ReplayPlan, people: np.ndarray, is_patient: np.ndarray) -> pa.Array:
    """INS for patients, RPPS for professionals, null where there is nobody (-1)."""
    out = np.zeros(people.size, dtype="S15")
    patient = is_patient & (people >= 0)
    professional = ~is_patient & (people >= 0)
    out[patient] = plan.population.ins(people[patient], as_bytes=True)
    out[professional] = plan.population.rpps(people[professional], as_bytes=True)
    return _strings(out, people < 0)


def _facilities(plan: ReplayPlan, sectors: np.ndarray, producers: np.ndarray) -> pa.Array:
    out = np.zeros(producers.size, dtype="S9")
    known = np.zeros(producers.size, dtype=bool)
    for index, name in enumerate(PROFESSIONAL_SECTORS):
        mine = (sectors == index) & (producers >= 0)
        finess = plan.population.finess(name, producers[mine], as_bytes=True)
        if finess is not None:
            out[mine], known[mine] = finess, True
    return _strings(out, ~known)


def _window_metadata(plan: ReplayPlan) -> dict[str, str]:
    scenario = plan.population.scenario
    return {"scenario": scenario.name, "seed": str(scenario.seed), "scale": str(scenario.scale),
            "window_start": plan.window.start.isoformat(), "window_minutes": str(plan.window.minutes),
            "call_patterns": scenario.call_patterns.model_dump_json()}


def schedule_table(plan: ReplayPlan) -> pa.Table:
    """One row per request of the window, in send order; the window is described in the metadata."""
    rows = plan.rows
    is_patient = rows["sector"] == PATIENT
    return pa.table({
        "offset_s": pa.array(rows["offset_s"], pa.float64()),
        "operation": _dictionary(rows["operation"], OPERATIONS),
        "sector": _dictionary(rows["sector"], SECTORS),
        "actor_kind": _dictionary(is_patient.astype(np.int8), ("professional", "patient")),
        "actor_id": _identifiers(plan, rows["actor"], is_patient),
        "facility_id": _facilities(plan, rows["sector"], rows["producer"]),
        "patient_ins": _identifiers(plan, rows["patient"], np.ones(rows["patient"].size, dtype=bool)),
        "document_id": document_ids(plan, rows["document"]),
        "type_code": _dictionary(rows["type"], plan.type_codes),
        "size_bytes": pa.array(rows["size"], pa.int64()),
        "target_rpps": _identifiers(plan, rows["target_professional"], np.zeros(rows["actor"].size, dtype=bool)),
    }, metadata=_window_metadata(plan))


def _corpus_table(plan: ReplayPlan, corpus: dict[str, np.ndarray], needed: bool, sort: bool,
                  metadata: dict[str, str]) -> pa.Table:
    by_patient = corpus["sector"] == PATIENT
    opened = np.datetime64(plan.window.start, "ms")
    dates = opened - (corpus["age_s"] * 1000).astype("timedelta64[ms]")
    if sort:
        order = np.argsort(dates, kind="stable")
        corpus = {name: column[order] for name, column in corpus.items()}
        by_patient, dates = by_patient[order], dates[order]
    return pa.table({
        "document_id": document_ids(plan, corpus["document"]),
        "patient_ins": _identifiers(plan, corpus["patient"], np.ones(by_patient.size, dtype=bool)),
        "type_code": _dictionary(corpus["type"], plan.type_codes),
        "size_bytes": pa.array(corpus["size"], pa.int64()),
        "date": pa.array(dates, pa.timestamp("ms")),
        "author_kind": _dictionary(by_patient.astype(np.int8), ("professional", "patient")),
        "author_id": _identifiers(plan, np.where(by_patient, corpus["patient"], corpus["author"]), by_patient),
        "author_sector": _dictionary(corpus["sector"], SECTORS),
        "facility_id": _facilities(plan, corpus["sector"], corpus["producer"]),
        "needed": pa.array(np.full(by_patient.size, needed)),
    }, metadata=metadata)


def corpus_rows_mode(plan: ReplayPlan) -> str:
    """``all`` when corpus.parquet holds the whole history, ``needed`` only the needed rows, ``sample`` the needed
    ones and a uniform sample of the rest up to ``corpus.max_rows`` (see the module)."""
    settings = plan.population.scenario.corpus
    if plan.history is None or settings.rows == "needed":
        return "needed"
    return "sample" if plan.history.documents > settings.max_rows else "all"


def _corpus_metadata(plan: ReplayPlan) -> dict[str, str]:
    history = plan.history.documents if plan.history is not None else plan.corpus["document"].size
    return {**_window_metadata(plan), "needed_documents": str(plan.corpus["document"].size),
            "history_documents": str(history), "rows": corpus_rows_mode(plan),
            "history_start": plan.population.scenario.corpus.history_start.isoformat()}


def corpus_table(plan: ReplayPlan) -> pa.Table:
    """The needed rows of corpus.parquet (every document the window's operations need), by date."""
    return _corpus_table(plan, plan.corpus, True, True, _corpus_metadata(plan))


def write_corpus(plan: ReplayPlan, path: Path) -> dict[str, int]:
    """corpus.parquet: the needed rows, then (``rows: all``) the rest of the history in a random order, streamed
    in row groups. Returns {rows, needed, bytes}."""
    first = corpus_table(plan)
    written = {"rows": first.num_rows, "needed": first.num_rows, "bytes": int(plan.corpus["size"].sum())}
    with pq.ParquetWriter(path, first.schema, compression="zstd") as writer:
        writer.write_table(first, row_group_size=ROW_GROUP)
        mode = corpus_rows_mode(plan)
        if mode != "needed":
            limit = max(plan.population.scenario.corpus.max_rows - first.num_rows, 0) if mode == "sample" else None
            for chunk in plan.rest(ROW_GROUP * 4, limit):
                table = _corpus_table(plan, chunk, False, False, first.schema.metadata)
                writer.write_table(table.cast(first.schema), row_group_size=ROW_GROUP)
                written["rows"] += table.num_rows
                written["bytes"] += int(chunk["size"].sum())
    return written


def write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, row_group_size=ROW_GROUP, compression="zstd")


# --- summary -------------------------------------------------------------------------------


def _peaks(traffic: Traffic) -> dict:
    total, hour = traffic.per_minute, traffic.peak_hour
    minute = int(np.argmax(total))
    return {
        "peak_hour": {
            "start": traffic.calendar.moment(hour.first_minute).isoformat(),
            "operations": int(hour.operations),
            "per_second": round(hour.operations / 3600, 3),
            "deposits_per_second": round(hour.deposits / 3600, 3),
            "reads_per_second": round(hour.reads / 3600, 3),
        },
        "peak_minute": {
            "time": traffic.calendar.moment(minute).isoformat(),
            "operations": int(total[minute]),
            "per_second": round(total[minute] / 60, 3),
        },
        "peak_second": _peak_second(traffic, total),
    }


def _peak_second(traffic: Traffic, total: np.ndarray) -> dict:
    """The busiest second, estimated: a minute's flushes arrive within their flush_seconds, the rest evenly."""
    scenario = traffic.scenario
    first_second = (total - traffic.flushed.sum(axis=0)) / 60.0
    for index, sector in enumerate(PROFESSIONAL_SECTORS):
        batching = scenario.sectors[sector].batching
        if batching is not None:
            first_second = first_second + traffic.flushed[index] / max(batching.flush_seconds, 1.0)
    minute = int(np.argmax(first_second))
    return {"time": traffic.calendar.moment(minute).isoformat(), "requests": round(float(first_second[minute]), 1)}


def calibration(traffic: Traffic) -> list[dict]:
    """Every published point inside the simulated period: {what, period, unit, published, model, difference, tolerance, within, source}.

    ``difference`` is relative for counts and in absolute points for shares (``unit`` "share").
    """
    daily = traffic.daily

    def series(operation: str, sector: str) -> np.ndarray:
        return daily[OPERATIONS.index(operation), SECTORS.index(sector)]

    rows = []
    for figure in FIGURES:
        model = model_value(figure, traffic.scenario, traffic.calendar, series)
        if model is None:
            continue
        share = figure.unit == "share"
        difference = model - figure.published if share else model / figure.published - 1
        rows.append({"what": figure.what, "period": figure.period, "unit": figure.unit, "published": figure.published,
                     "model": round(model, 4 if share or figure.measure == "ratio" else 1), "difference": round(difference, 4),
                     "tolerance": figure.tolerance, "within": abs(difference) <= figure.tolerance,
                     "source": figure.source})
    return rows


def assumptions(scenario) -> list[dict]:
    """The scenario's assumptions as {name, low, central, high, unit, why, path, used}."""
    return [{"name": name, "low": a.low, "central": a.central, "high": a.high, "unit": a.unit, "why": a.why,
             "path": a.path, "used": scenario.levels.get(name, "central")}
            for name, a in scenario.assumptions.items()]


def patient_usage(traffic: Traffic) -> dict:
    """What the patient model implies, to set against the published usage (reads per deposit, documents opened)."""
    totals = traffic.counts.sum(axis=2)
    patient = SECTORS.index("patient")
    professional = [SECTORS.index(s) for s in PROFESSIONAL_SECTORS]
    deposits = int(totals[OPERATIONS.index("deposit"), professional].sum())
    patient_reads = int(totals[[OPERATIONS.index(o) for o in READS], patient].sum())
    professional_reads = int(totals[np.ix_([OPERATIONS.index(o) for o in READS], professional)].sum())
    notified = int(traffic.consultations.sum())
    return {
        "patient_reads": patient_reads,
        "professional_reads": professional_reads,
        "reads_per_professional_deposit": round((patient_reads + professional_reads) / deposits, 3) if deposits else None,
        "notified_consultations": notified,
        "documents_opened_after_notification_share": round(notified / deposits, 4) if deposits else None,
        "campaigns": {name: vars(outcome) for name, outcome in traffic.campaigns.items()},
    }


def mean_document_bytes(plan: ReplayPlan) -> dict[str, float]:
    """Modelled mean size of a document per sector (patients: their uploads), bytes."""
    return {name: plan.types.mean_size(name) for name in SECTORS}


def corpus_summary(plan: ReplayPlan, written: dict[str, int] | None) -> dict:
    """The corpus at the scale: {documents, bytes, needed_documents, needed_bytes, rows, history_start, ...}.

    ``documents`` is the history's count table (:class:`simulator.history.History`); ``bytes`` the
    sizes written to corpus.parquet when every row is (``rows: all``), else the documents not
    written times the modelled mean sizes (``bytes_estimated``: true).
    """
    history = plan.history
    needed_bytes = int(plan.corpus["size"].sum())
    result = {"history_start": plan.population.scenario.corpus.history_start.isoformat(),
              "until": plan.window.start.isoformat(), "scale": plan.population.scenario.scale,
              "documents": history.documents, "needed_documents": int(plan.corpus["document"].size),
              "needed_bytes": needed_bytes, "rows": corpus_rows_mode(plan)}
    if written is not None and result["rows"] == "all":
        result["bytes"], result["bytes_estimated"] = written["bytes"], False
    else:
        means = mean_document_bytes(plan)
        rest = history.remaining.sum(axis=0)
        result["bytes"] = needed_bytes + round(sum(rest[i] * means[name] for i, name in enumerate(SECTORS)))
        result["bytes_estimated"] = True
    result["by_sector"] = {name: int(history.drawn[:, i].sum()) for i, name in enumerate(SECTORS)}
    return result


def storage_by_year(plan: ReplayPlan, end: dt.date) -> list[dict]:
    """The NATIONAL record at the end of each year from corpus.history_start to ``end`` (the period's end):
    cumulative documents and bytes, by sector, from the expected national volumes
    (:func:`simulator.history.national_storage`) and the modelled mean sizes."""
    return national_storage(plan.population.scenario, mean_document_bytes(plan), end)


def summary(traffic: Traffic, plan: ReplayPlan | None, files: dict[str, int],
            corpus_written: dict[str, int] | None = None) -> dict:
    scenario, ledger = traffic.scenario, traffic.ledger
    totals = traffic.counts.sum(axis=2)
    professional_rows = [SECTORS.index(s) for s in PROFESSIONAL_SECTORS]
    professional_deposits = int(totals[OPERATIONS.index("deposit"), professional_rows].sum())
    by_month = professional_deposits_by_month(traffic)
    days = traffic.calendar.days
    inside, outside = scenario.events_in_period()
    result = {
        "scenario": scenario.name,
        "description": scenario.description.strip(),
        "seed": scenario.seed,
        "scale": scenario.scale,
        "period": {"start": traffic.calendar.start.isoformat(), "end": traffic.calendar.end.isoformat(), "days": days},
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "totals": {op: {sector: int(totals[o, s]) for s, sector in enumerate(SECTORS)} for o, op in enumerate(OPERATIONS)},
        "totals_by_operation": {op: int(totals[o].sum()) for o, op in enumerate(OPERATIONS)},
        "totals_by_sector": {sector: int(totals[:, s].sum()) for s, sector in enumerate(SECTORS)},
        "professional_deposits": professional_deposits,
        "annualised_deposit_rate": round(professional_deposits / days * 365.25),
        **_peaks(traffic),
        "monthly_professional_deposits": by_month,
        "calibration": calibration(traffic),
        "assumption_level": scenario.level,
        "assumptions": assumptions(scenario),
        "uplift": scenario.uplift,
        "patient_usage": patient_usage(traffic),
        "deposit_ledger": {
            "produced": ledger.produced, "delivered": ledger.delivered, "never_sent": ledger.never_sent,
            "pending_at_end": ledger.pending_at_end, "balanced": ledger.balanced,
            "strikes": {name: vars(outcome) for name, outcome in ledger.strikes.items()},
            "outages": {name: vars(outcome) for name, outcome in ledger.outages.items()},
            "back_loads": {name: vars(outcome) for name, outcome in ledger.back_loads.items()},
        },
        "refused_during_outage": traffic.refused_during_outage,
        "retried_after_outage": {key: vars(outcome) for key, outcome in traffic.retries.items()},
        "events": inside,
        "events_outside_period": outside,
        "files": files,
    }
    if plan is not None:
        ops = plan.rows["operation"]
        result["replay_window"] = {
            "start": plan.window.start.isoformat(),
            "minutes": plan.window.minutes,
            "operations": int(ops.size),
            "per_second": round(ops.size / (plan.window.minutes * 60), 3),
            "by_operation": {op: int((ops == o).sum()) for o, op in enumerate(OPERATIONS)},
            "corpus_documents": int(plan.corpus["document"].size),
            "corpus_bytes": int(plan.corpus["size"].sum()),
            "deposited_bytes": int(plan.rows["size"][ops == OPERATIONS.index("deposit")].sum()),
        }
        if plan.history is not None:
            # corpus: the record at the window's start, at the scale; storage_by_year: the nation's, by year end
            result["corpus"] = corpus_summary(plan, corpus_written)
            result["storage_by_year"] = storage_by_year(plan, traffic.calendar.end)
    return result


def write_summary(data: dict, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
