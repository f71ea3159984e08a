"""What the replay measures beside Locust's own statistics: lateness, and planned against achieved rate.

Everything is counts in fixed bins, so the master merges workers' snapshots by adding them.
A wrong answer (``load.checks``) is a failure, also counted on its own (``wrong_answers``).
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from load.checks import Outcome

# lateness bins in milliseconds: 0.1 ms steps to 10 ms, then log-spaced to 10 minutes
_EDGES_MS = [i / 10 for i in range(101)] + [10 * 1.05 ** i for i in range(1, 230)]


class LatenessHistogram:
    """Lateness (actual send time - planned time) of requests, in milliseconds."""

    def __init__(self, counts: list[int] | None = None):
        self.counts = list(counts) if counts else [0] * (len(_EDGES_MS) + 1)

    def add(self, lateness_ms: float, count: int = 1) -> None:
        self.counts[bisect.bisect_left(_EDGES_MS, max(lateness_ms, 0.0))] += count

    def merge(self, other: "LatenessHistogram") -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]

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

    def planned(self, second: int) -> None:
        self.timeline[second][0] += 1

    def record_send(self, operation: str, lateness_ms: float, second: int) -> None:
        self.sent[operation] += 1
        self.lateness.add(lateness_ms)
        self.late_max_ms = max(self.late_max_ms, lateness_ms)
        self.timeline[second][1] += 1

    def leaving(self) -> None:
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)

    def answered(self) -> None:
        self.in_flight -= 1

    def record_not_sent(self, operation: str, lateness_ms: float, second: int) -> None:
        """Take back a :meth:`record_send` whose request did not leave (its target was never acknowledged)."""
        self.sent[operation] -= 1
        self.lateness.add(lateness_ms, -1)
        self.timeline[second][1] -= 1
        self.not_sent[operation] += 1

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
                "in_flight_max": self.in_flight_max}

    @classmethod
    def from_snapshots(cls, snapshots: list[dict]) -> "ReplayStats":
        merged = cls()
        for snapshot in snapshots:
            merged.lateness.merge(LatenessHistogram(snapshot["lateness"]))
            for name in ("sent", "succeeded", "failed", "wrong", "not_sent"):
                for operation, count in snapshot.get(name, {}).items():
                    getattr(merged, name)[operation] += count
            for second, values in snapshot["timeline"].items():
                row = merged.timeline[int(second)]
                for i, value in enumerate(values):
                    row[i] += value
            merged.late_max_ms = max(merged.late_max_ms, snapshot["late_max_ms"])
            merged.last_answer_s = max(merged.last_answer_s, snapshot.get("last_answer_s", 0.0))
            merged.unanswered += snapshot.get("unanswered", 0)
            merged.in_flight_max += snapshot.get("in_flight_max", 0)  # processes' maxima added: an upper bound
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
            # histogram edges, never above the largest lateness seen; 0.1 ms is what a person reads
            "lateness_p50_ms": round(min(self.lateness.percentile(50), self.late_max_ms), 1),
            "lateness_p99_ms": round(min(self.lateness.percentile(99), self.late_max_ms), 1),
            "lateness_max_ms": round(self.late_max_ms, 1),
            "in_flight_max": self.in_flight_max,  # the real concurrency (Locust counts one user per process)
            "not_sent": sum(self.not_sent.values()),  # not in "sent": no request left for them
            "not_sent_by_operation": dict(sorted(self.not_sent.items())),
            "last_answer_s": round(self.last_answer_s, 3),
            f"share_within_{on_time_ms:g}ms": round(self.lateness.share_within(on_time_ms), 5),
        }

    def rates(self) -> list[dict]:
        """Per second: planned and actual sends, completions (what the web UI and the plan draw)."""
        return [{"second": second, "planned": row[0], "sent": row[1], "succeeded": row[2], "failed": row[3]}
                for second, row in sorted(self.timeline.items())]
