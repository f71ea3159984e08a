"""What the replay measures beside Locust's own statistics: lateness, and planned against achieved rate.

Everything is counts in fixed bins, so the master merges workers' snapshots by adding them.
A wrong answer (``load.checks``) is a failure, also counted on its own (``wrong_answers``).
Lateness and requests in flight are also kept per operation: :meth:`ReplayStats.by_operation` gives
them as rows named as Locust names its requests (type: the HTTP method, name: the operation).
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from load.checks import Outcome
from load.requests import METHODS

# lateness bins in milliseconds: 0.1 ms steps to 10 ms, then log-spaced to 10 minutes
_EDGES_MS = [i / 10 for i in range(101)] + [10 * 1.05 ** i for i in range(1, 230)]


def lateness_bin(lateness_ms: float) -> int:
    """The index of the bin holding a lateness in ms (a negative one, an early request, counts as 0)."""
    return bisect.bisect_left(_EDGES_MS, max(lateness_ms, 0.0))


class LatenessHistogram:
    """Lateness (actual send time - planned time) of requests, in milliseconds."""

    def __init__(self, counts: list[int] | None = None):
        self.counts = list(counts) if counts else [0] * (len(_EDGES_MS) + 1)

    def add(self, lateness_ms: float) -> None:
        self.counts[lateness_bin(lateness_ms)] += 1

    def merge(self, other: "LatenessHistogram") -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]

    def sparse(self) -> dict[str, int]:
        """The bins that hold requests, {bin index: count} (what a worker sends: most bins are empty)."""
        return {str(index): count for index, count in enumerate(self.counts) if count}

    def merge_sparse(self, bins: dict[str, int]) -> None:
        """Add bins given as :meth:`sparse` gives them."""
        for index, count in bins.items():
            self.counts[int(index)] += count

    @property
    def total(self) -> int:
        return sum(self.counts)

    def percentile(self, q: float) -> float:
        """The upper edge of the bin holding the q-th percentile (0 when empty)."""
        total = self.total
        if total == 0:
            return 0.0
        rank, seen = q / 100 * total, 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return _EDGES_MS[min(index, len(_EDGES_MS) - 1)]
        return _EDGES_MS[-1]

    def share_within(self, limit_ms: float) -> float:
        total = self.total
        if total == 0:
            return 1.0
        return sum(self.counts[:bisect.bisect_left(_EDGES_MS, limit_ms) + 1]) / total


class LatencyBook:
    """Response times (ms, in the lateness bins), counts, failures and driver CPU (s) per name: the protocol's
    calls (``ITI-18 FindDocuments``…) or the interactions they make up (``consultation (xds)``…).

    The driver's CPU is what building a request and checking its answer cost (plus, for an interaction, signing
    its VIHF): the network wait and the HTTP client's own work are not in it."""

    def __init__(self) -> None:
        self.times: dict[str, LatenessHistogram] = defaultdict(LatenessHistogram)
        self.count: dict[str, int] = defaultdict(int)
        self.failed: dict[str, int] = defaultdict(int)
        self.cpu_s: dict[str, float] = defaultdict(float)
        self.max_ms: dict[str, float] = defaultdict(float)
        self.made: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # interaction -> call -> count

    def add(self, name: str, elapsed_ms: float, ok: bool, cpu_s: float = 0.0, calls: list[str] = ()) -> None:
        """One more ``name`` that took ``elapsed_ms``; ``calls``: the calls an interaction was made of."""
        for call in calls:
            self.made[name][call] += 1
        self.times[name].add(elapsed_ms)
        self.count[name] += 1
        if not ok:
            self.failed[name] += 1
        self.cpu_s[name] += cpu_s
        self.max_ms[name] = max(self.max_ms[name], elapsed_ms)

    def snapshot(self) -> dict:
        return {name: {"times": self.times[name].sparse(), "count": self.count[name], "failed": self.failed[name],
                       "cpu_s": self.cpu_s[name], "max_ms": self.max_ms[name], "made": dict(self.made.get(name, {}))}
                for name in self.count}

    def merge_snapshot(self, snapshot: dict) -> None:
        for name, entry in snapshot.items():
            self.times[name].merge_sparse(entry["times"])
            self.count[name] += entry["count"]
            self.failed[name] += entry["failed"]
            self.cpu_s[name] += entry["cpu_s"]
            self.max_ms[name] = max(self.max_ms[name], entry["max_ms"])
            for call, count in entry.get("made", {}).items():
                self.made[name][call] += count

    def figures(self) -> dict[str, dict]:
        """Per name: count, failures, p50/p99/max in ms, the driver's CPU per one in µs; for an interaction, the
        calls it was made of on average (``calls_per_interaction``: call -> mean count)."""
        figures = {}
        for name in sorted(self.count):
            figures[name] = _latency_figures(self.times[name], self.count[name], self.failed[name], self.max_ms[name],
                                             self.cpu_s[name])
            if self.made.get(name):
                figures[name]["calls_per_interaction"] = {call: round(n / self.count[name], 3)
                                                          for call, n in sorted(self.made[name].items())}
        return figures

    def aggregated(self) -> dict:
        """Every name together (the calls of a run: what the plan's latency and error rate are taken over)."""
        merged = LatenessHistogram()
        for histogram in self.times.values():
            merged.merge(histogram)
        return _latency_figures(merged, sum(self.count.values()), sum(self.failed.values()),
                                max(self.max_ms.values(), default=0.0), sum(self.cpu_s.values()))


def _latency_figures(times: LatenessHistogram, count: int, failed: int, max_ms: float, cpu_s: float) -> dict:
    return {"count": count, "failures": failed, "p50_ms": round(min(times.percentile(50), max_ms), 1),
            "p99_ms": round(min(times.percentile(99), max_ms), 1), "max_ms": round(max_ms, 1),
            # None when nothing was measured (an interaction: its calls carry the driver's CPU)
            "driver_cpu_us": round(cpu_s * 1e6 / count, 1) if count and cpu_s else None}


class ReplayStats:
    """One process's (or, merged, the whole run's) replay figures."""

    def __init__(self) -> None:
        self.lateness = LatenessHistogram()
        self.sent: dict[str, int] = defaultdict(int)
        self.succeeded: dict[str, int] = defaultdict(int)
        self.failed: dict[str, int] = defaultdict(int)
        self.wrong: dict[str, int] = defaultdict(int)   # failed because the answer was wrong (load.checks)
        # per second since the replay's start: planned sends, actual sends, completions
        self.timeline: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.late_max_ms = 0.0
        self.last_answer_s = 0.0  # seconds from the replay's start to its last answer
        self.unanswered = 0       # sent, but no answer before the replay's drain time ran out
        self.not_sent: dict[str, int] = defaultdict(int)  # rows whose target was never acknowledged
        self.in_flight = 0          # requests that left and have no answer yet (Locust's "users" stay at 1)
        self.in_flight_max = 0
        # per row label (an interaction as Locust names it, see row_label; or an operation): sent, not sent, lateness
        # (ms), its largest value (ms), requests in flight now and at most
        self.sent_by_label: dict[str, int] = defaultdict(int)
        self.not_sent_by_label: dict[str, int] = defaultdict(int)
        self.lateness_by_operation: dict[str, LatenessHistogram] = defaultdict(LatenessHistogram)
        self.late_max_by_operation: dict[str, float] = defaultdict(float)
        self.in_flight_by_operation: dict[str, int] = defaultdict(int)
        self.in_flight_max_by_operation: dict[str, int] = defaultdict(int)
        # the protocol's calls and the interactions they make up (load.interactions): latency, failures, driver CPU
        self.calls = LatencyBook()
        self.interactions = LatencyBook()
        self.signatures = LatencyBook()   # VIHF assertions the driver signed (time and CPU of signing)

    def planned(self, second: int) -> None:
        self.timeline[second][0] += 1

    def record_send(self, operation: str, lateness_ms: float, second: int, label: str | None = None) -> None:
        """A request of ``operation`` leaves ``lateness_ms`` after its planned time, ``second`` s after the start;
        ``label`` names its per-request row (:func:`row_label`; the operation when None)."""
        self.sent[operation] += 1
        label = label or operation
        self.sent_by_label[label] += 1
        index = lateness_bin(lateness_ms)
        self.lateness.counts[index] += 1
        self.lateness_by_operation[label].counts[index] += 1
        self.late_max_ms = max(self.late_max_ms, lateness_ms)
        self.late_max_by_operation[label] = max(self.late_max_by_operation[label], lateness_ms)
        self.timeline[second][1] += 1

    def leaving(self, operation: str) -> None:
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        count = self.in_flight_by_operation[operation] = self.in_flight_by_operation[operation] + 1
        self.in_flight_max_by_operation[operation] = max(self.in_flight_max_by_operation[operation], count)

    def answered(self, operation: str) -> None:
        self.in_flight -= 1
        self.in_flight_by_operation[operation] -= 1

    def record_not_sent(self, operation: str, lateness_ms: float, second: int, label: str | None = None) -> None:
        """Take back a :meth:`record_send` whose request did not leave (its target was never acknowledged);
        the largest lateness seen is not taken back."""
        self.sent[operation] -= 1
        label = label or operation
        self.sent_by_label[label] -= 1
        index = lateness_bin(lateness_ms)
        self.lateness.counts[index] -= 1
        self.lateness_by_operation[label].counts[index] -= 1
        self.timeline[second][1] -= 1
        self.not_sent[operation] += 1
        self.not_sent_by_label[label] += 1

    def record_outcome(self, operation: str, ok: bool | Outcome, elapsed_s: float) -> None:
        """One answer (or failure) ``elapsed_s`` after the replay's start; ``ok`` is a bool or an
        :class:`load.checks.Outcome` (``WRONG``: a failure that is also counted as a wrong answer)."""
        (self.succeeded if ok else self.failed)[operation] += 1
        if ok is Outcome.WRONG:
            self.wrong[operation] += 1
        self.timeline[int(elapsed_s)][2 if ok else 3] += 1
        self.last_answer_s = max(self.last_answer_s, elapsed_s)

    # --- across processes ---------------------------------------------------------------

    def snapshot(self) -> dict:
        return {"lateness": self.lateness.counts, "sent": dict(self.sent), "succeeded": dict(self.succeeded),
                "failed": dict(self.failed), "wrong": dict(self.wrong), "not_sent": dict(self.not_sent),
                "timeline": {str(k): v for k, v in self.timeline.items()},
                "late_max_ms": self.late_max_ms, "last_answer_s": self.last_answer_s, "unanswered": self.unanswered,
                "in_flight_max": self.in_flight_max, "in_flight": self.in_flight,
                "lateness_by_operation": {operation: histogram.sparse()
                                          for operation, histogram in self.lateness_by_operation.items()},
                "late_max_by_operation": dict(self.late_max_by_operation),
                "in_flight_by_operation": dict(self.in_flight_by_operation),
                "in_flight_max_by_operation": dict(self.in_flight_max_by_operation),
                "sent_by_label": dict(self.sent_by_label), "not_sent_by_label": dict(self.not_sent_by_label),
                "calls": self.calls.snapshot(), "interactions": self.interactions.snapshot(),
                "signatures": self.signatures.snapshot()}

    @classmethod
    def from_snapshots(cls, snapshots: list[dict]) -> "ReplayStats":
        """The processes' figures merged: counts added, maxima of lateness taken, maxima in flight added (an
        upper bound). A snapshot of an older worker, without the per-operation figures, merges without them."""
        merged = cls()
        for snapshot in snapshots:
            merged.lateness.merge(LatenessHistogram(snapshot["lateness"]))
            for name in ("sent", "succeeded", "failed", "wrong", "not_sent", "in_flight_by_operation",
                         "in_flight_max_by_operation", "sent_by_label", "not_sent_by_label"):
                for operation, count in snapshot.get(name, {}).items():
                    getattr(merged, name)[operation] += count
            for operation, bins in snapshot.get("lateness_by_operation", {}).items():
                merged.lateness_by_operation[operation].merge_sparse(bins)
            for operation, late_ms in snapshot.get("late_max_by_operation", {}).items():
                merged.late_max_by_operation[operation] = max(merged.late_max_by_operation[operation], late_ms)
            for second, values in snapshot["timeline"].items():
                row = merged.timeline[int(second)]
                for i, value in enumerate(values):
                    row[i] += value
            merged.late_max_ms = max(merged.late_max_ms, snapshot["late_max_ms"])
            merged.last_answer_s = max(merged.last_answer_s, snapshot.get("last_answer_s", 0.0))
            merged.unanswered += snapshot.get("unanswered", 0)
            merged.in_flight_max += snapshot.get("in_flight_max", 0)  # processes' maxima added: an upper bound
            merged.in_flight += snapshot.get("in_flight", 0)          # as of each process's last report
            merged.calls.merge_snapshot(snapshot.get("calls", {}))
            merged.interactions.merge_snapshot(snapshot.get("interactions", {}))
            merged.signatures.merge_snapshot(snapshot.get("signatures", {}))
        return merged

    def summary(self, on_time_ms: float = 20.0) -> dict:
        sent = sum(self.sent.values())
        return {
            "sent": sent,
            "sent_by_operation": {operation: n for operation, n in sorted(self.sent.items()) if n},
            "succeeded": sum(self.succeeded.values()),
            "failed": sum(self.failed.values()),
            "unanswered": self.unanswered,
            "failed_by_operation": dict(sorted(self.failed.items())),
            "wrong_answers": sum(self.wrong.values()),     # part of "failed": an accepted status, wrong content
            "wrong_answers_by_operation": dict(sorted(self.wrong.items())),
            **lateness_figures(self.lateness, self.late_max_ms),
            "in_flight_max": self.in_flight_max,  # the real concurrency (Locust counts one user per process)
            "not_sent": sum(self.not_sent.values()),  # not in "sent": no request left for them
            "not_sent_by_operation": dict(sorted(self.not_sent.items())),
            "last_answer_s": round(self.last_answer_s, 3),
            f"share_within_{on_time_ms:g}ms": round(self.lateness.share_within(on_time_ms), 5),
            "operations": self.by_operation(),  # the Lateness tab's rows (ReplayStats.by_operation)
            "calls": self.calls.figures(),                 # per call type: latency, failures, driver CPU
            "calls_aggregated": self.calls.aggregated(),
            "interactions": self.interactions.figures(),   # per interaction (consultation (xds)…)
            "signatures": self.signatures.figures(),       # the driver's VIHF signing
        }

    def by_operation(self) -> list[dict]:
        """One row per row of Locust's Statistics the replay's rows make: an interaction (``type`` e.g.
        ``consultation (xds)``, ``name`` its variant, see :func:`row_label`), or, for rows sent without a label,
        the operation (``type``: its HTTP method); sorted as Locust sorts them, then the "Aggregated" row (the
        overall figures): sent, not sent, lateness p50/p99/max in ms (None when none of its requests left),
        requests in flight now (as of the processes' last reports) and at most."""
        sent = self.sent_by_label or self.sent          # an older snapshot has no labels: its operations
        not_sent = self.not_sent_by_label or self.not_sent
        labels = {label for label, n in sent.items() if n} | {label for label, n in not_sent.items() if n}
        rows = [self._row(*_type_and_name(label), sent.get(label, 0), not_sent.get(label, 0),
                          self.lateness_by_operation.get(label, LatenessHistogram()),
                          self.late_max_by_operation.get(label, 0.0), self.in_flight_by_operation.get(label, 0),
                          self.in_flight_max_by_operation.get(label, 0))
                for label in sorted(labels, key=lambda label: _type_and_name(label)[::-1])]
        rows.append(self._row("", "Aggregated", sum(self.sent.values()), sum(self.not_sent.values()), self.lateness,
                              self.late_max_ms, self.in_flight, self.in_flight_max))
        return rows

    @staticmethod
    def _row(method: str, name: str, sent: int, not_sent: int, lateness: LatenessHistogram, late_max_ms: float,
             in_flight: int, in_flight_max: int) -> dict:
        figures = lateness_figures(lateness, late_max_ms) if sent > 0 else dict.fromkeys(LATENESS_KEYS)
        return {"type": method, "name": name, "sent": sent, "not_sent": not_sent, **figures,
                "in_flight": in_flight, "in_flight_max": in_flight_max}

    def rates(self) -> list[dict]:
        """Per second: planned and actual sends, completions (what the web UI and the plan draw)."""
        return [{"second": second, "planned": row[0], "sent": row[1], "succeeded": row[2], "failed": row[3]}
                for second, row in sorted(self.timeline.items())]


def row_label(request_type: str, name: str) -> str:
    """The key of a per-request row: Locust's (Type, Name) of the row's interaction."""
    return f"{request_type}\t{name}"


def _type_and_name(label: str) -> tuple[str, str]:
    if "\t" in label:
        request_type, _, name = label.partition("\t")
        return request_type, name
    return METHODS.get(label, ""), label


LATENESS_KEYS = ("lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms")

# the keys of ReplayStats.by_operation's rows and their titles, in the order of Locust's Statistics (Type, Name
# first): the Lateness tab, the Replay page and the reports after a run show them so
OPERATION_COLUMNS = (("type", "Type"), ("name", "Name"), ("sent", "# sent"), ("not_sent", "# not sent"),
                     ("lateness_p50_ms", "Lateness p50 (ms)"), ("lateness_p99_ms", "Lateness p99 (ms)"),
                     ("lateness_max_ms", "Lateness max (ms)"), ("in_flight", "In flight now"),
                     ("in_flight_max", "Most in flight"))


def lateness_figures(lateness: LatenessHistogram, late_max_ms: float) -> dict[str, float]:
    """Lateness p50, p99 and max in ms, rounded to 0.1 ms (what a person reads); the percentiles are bin edges,
    never above the largest lateness seen."""
    return {"lateness_p50_ms": round(min(lateness.percentile(50), late_max_ms), 1),
            "lateness_p99_ms": round(min(lateness.percentile(99), late_max_ms), 1),
            "lateness_max_ms": round(late_max_ms, 1)}
