"""Replay a simulated schedule against a record service with Locust, as an open workload.

    locust -f load/locustfile.py --schedule results/<run>/ --host http://127.0.0.1:8080

opens Locust's web UI with our options (schedule, speed-up, key…) in its start form and a
"Replay" page (/replay) that draws the scenario's planned rate against the achieved rate and
the lateness. `segur load` and `segur plan` drive the same file headless.

One replayer runs per process (a load shape keeps one user per worker): it sends its shard of
the schedule, every row at its planned time. With workers (`--processes N`, or
`locust --worker --master-host H` on other machines), the master gives each its shard and a
common start time; shards are by patient, so together they send every row exactly once.
"""

from __future__ import annotations

import gc
import json
import resource
import time
from pathlib import Path

import gevent
from gevent.event import Event
from locust import LoadTestShape, User, events, task
from locust.runners import MasterRunner, WorkerRunner

from load.client import AckLog, Locations, RecordClient, Tokens
from load.http import RecordHttp
from load.replay import OpenLoopReplay
from load.requests import DocumentBytes
from load.schedule import Shard, describe, planned_rows, read_rows, replay_rows
from load.stats import ReplayStats
from load.webpage import add_replay_page

START_DELAY_S = 2.0        # time for every worker to get its shard before the first row is due
STATS_INTERVAL_S = 1.0


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser  # Locust's parser takes include_in_web_ui; its argument groups do not
    group.add_argument("--schedule", default="", help="schedule.parquet, or the simulator's result directory")
    group.add_argument("--speedup", type=float, default=1.0, help="replay N times faster than the scenario")
    group.add_argument("--key", default=".segur/signing.key", help="the record service's token signing key file")
    group.add_argument("--locations", default="", help="where `segur seed` wrote the corpus's locations "
                       "(default: locations.parquet beside the schedule)")
    group.add_argument("--acks", default="", help="file to append every acknowledged deposit to", include_in_web_ui=False)
    group.add_argument("--replay-report", default="", help="JSON file for the replay's own figures", include_in_web_ui=False)
    group.add_argument("--replay-concurrency", type=int, default=4000, help="most requests in flight per process")
    group.add_argument("--connections", type=int, default=256,
                       help="HTTP connections per process (a request waiting for one counts in its response time)")
    group.add_argument("--replay-seconds", type=float, default=0.0,
                       help="play the window again and again for this many wall-clock seconds (0: once)")
    group.add_argument("--drain-seconds", type=float, default=0.0,
                       help="after the last row, wait at most this long for answers (0: until all come)")
    group.add_argument("--run-tag", default="", help="suffix making this run's masterIdentifiers unique",
                       include_in_web_ui=False)


class ReplayRun:
    """The replay's state in one Locust process (master, worker or local)."""

    def __init__(self, environment) -> None:
        self.environment = environment
        self.shard: Shard | None = None
        self.start_at = 0.0
        self.ready = Event()
        self.local = ReplayStats()        # what this process sent
        self.snapshots: dict[str, dict] = {}  # master/local: every process's latest figures
        self.done: set[str] = set()
        self.workers = 1
        self.facts = None
        self._planned: int | None = None
        self.started_replay = False

    @property
    def options(self):
        return self.environment.parsed_options

    def schedule_facts(self):
        if self.facts is None:
            self.facts = describe(self.options.schedule)
        return self.facts

    def limit_s(self) -> float | None:
        """Scenario seconds to replay, None for one pass over the window."""
        seconds = self.options.replay_seconds
        return seconds * self.options.speedup if seconds and seconds > 0 else None

    def planned(self) -> int:
        """Rows this run sends in all (read from the file once per run, not at every page refresh)."""
        if self._planned is None:
            self._planned = planned_rows(self.options.schedule, self.schedule_facts().window_s, self.limit_s())
        return self._planned

    def reset(self) -> None:
        """A new run from the web UI's form: forget the previous one's figures."""
        self.schedule_facts()
        self._planned = None
        self.snapshots.clear()
        self.done.clear()

    def merged(self) -> ReplayStats:
        return ReplayStats.from_snapshots(list(self.snapshots.values()))

    def finished(self) -> bool:
        return self.shard is not None and len(self.done) >= self.workers

    def report(self) -> dict:
        stats = self.merged()
        facts = self.schedule_facts()
        limit = self.limit_s()
        return {"schedule": str(self.options.schedule), "speedup": self.options.speedup, "workers": self.workers,
                "planned": self.planned(), "window_s": facts.window_s, "replayed_scenario_s": limit or facts.window_s,
                "wall_s": (limit or facts.window_s) / self.options.speedup,
                **stats.summary(), "rates": stats.rates()}


def _run(environment) -> ReplayRun:
    return environment.replay_run


@events.init.add_listener
def _init(environment, **_kwargs) -> None:
    environment.replay_run = run = ReplayRun(environment)
    runner = environment.runner
    _raise_open_file_limit()
    _calm_garbage_collector()
    if not isinstance(runner, MasterRunner):
        runner.register_message("replay_shard", lambda msg, **_: _take_shard(run, msg.data))
    if not isinstance(runner, WorkerRunner):
        runner.register_message("replay_stats", lambda msg, **_: run.snapshots.__setitem__(
            msg.data["node"], msg.data["stats"]))
        runner.register_message("replay_done", lambda msg, **_: run.done.add(msg.data["node"]))
    if environment.web_ui:
        add_replay_page(environment.web_ui.app, lambda: _page_data(run))


def _raise_open_file_limit() -> None:
    """Connections are files: take the hard limit, not the default soft 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _calm_garbage_collector() -> None:
    """Full collections over thousands of in-flight greenlets stall the event loop for tens of ms: that is
    lateness. Objects alive after start-up are frozen out of collections, young ones collected less often."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _take_shard(run: ReplayRun, data: dict) -> None:
    run.shard = Shard(data["index"], data["count"])
    run.start_at = data["start_at"]
    run.ready.set()


@events.test_start.add_listener
def _start(environment, **_kwargs) -> None:
    run = _run(environment)
    if not run.options.schedule:
        raise ValueError("no --schedule: give a schedule.parquet or a `segur simulate` result directory")
    run.reset()
    runner = environment.runner
    start_at = time.time() + START_DELAY_S
    if isinstance(runner, MasterRunner):
        workers = sorted(runner.clients)
        run.workers = len(workers)
        run.shard = Shard(0, max(len(workers), 1))
        for index, client_id in enumerate(workers):
            runner.send_message("replay_shard", {"index": index, "count": len(workers), "start_at": start_at},
                                client_id=client_id)
    elif not isinstance(runner, WorkerRunner):
        run.workers = 1
        _take_shard(run, {"index": 0, "count": 1, "start_at": start_at})


@events.quitting.add_listener
def _write_report(environment, **_kwargs) -> None:
    run = getattr(environment, "replay_run", None)
    if run is None or isinstance(environment.runner, WorkerRunner) or not run.options.replay_report:
        return
    report = run.report()
    Path(run.options.replay_report).write_text(json.dumps(report, indent=1))
    # pipelines read the exit code: a replay that sent fewer rows than planned did not do its job
    if report["sent"] != report["planned"] and environment.process_exit_code in (None, 0):
        environment.process_exit_code = 3
    # a wrong answer (another patient's document, other bytes, no location) is never a served request
    if report["wrong_answers"] and environment.process_exit_code in (None, 0):
        environment.process_exit_code = 1


def _page_data(run: ReplayRun) -> dict:
    stats = run.merged()
    speedup = run.options.speedup if run.options else 1.0
    return {"speedup": speedup, "summary": stats.summary(), "rates": stats.rates(),
            "planned_total": run.planned() if run.facts else None}


def _sign_ahead(tokens: Tokens, rows, until: float) -> None:
    """Sign the first actors' tokens while waiting for the start: a burst of new actors would otherwise
    cost signing time right when the first requests are due."""
    for row in rows:
        if time.time() >= until:
            return
        tokens.header(row)


class ReplayShape(LoadTestShape):
    """One user per worker process while the replay runs; stops the test when every shard is done."""

    def tick(self):
        environment = self.runner.environment
        run = _run(environment)
        if run.finished():
            return None
        workers = max(len(self.runner.clients), 1) if isinstance(self.runner, MasterRunner) else 1
        if run.facts is not None:  # a bound, should a worker never report: the window, with a wide margin
            limit = (run.limit_s() or run.facts.window_s) / max(run.options.speedup, 1e-9) + 120 + 10 * START_DELAY_S
            if self.get_run_time() > limit:
                return None
        return workers, workers


class ScheduleReplayer(User):
    """The process's replayer. The pool inside it, not the number of users, sets the concurrency."""

    @task
    def replay(self) -> None:
        run = _run(self.environment)
        if run.started_replay:  # a second user in this process has nothing to do
            gevent.sleep(3600)
            return
        run.started_replay = True
        if not run.ready.wait(timeout=60):
            raise RuntimeError("no shard from the master within 60 s")
        options = run.options
        schedule = Path(options.schedule)
        folder = schedule if schedule.is_dir() else schedule.parent
        locations = Locations.load(options.locations or folder / "locations.parquet")
        acks = AckLog(options.acks or None)
        tokens = Tokens(options.key)
        _sign_ahead(tokens, read_rows(options.schedule, run.shard), until=run.start_at - 0.2)
        http = RecordHttp(self.host or self.environment.host, self.environment.events.request,
                          connections=options.connections)
        client = RecordClient(http, tokens, locations, acks, DocumentBytes(), self.environment.events.request,
                              run_tag=options.run_tag)
        rows = replay_rows(options.schedule, run.shard, run.schedule_facts().window_s, run.limit_s())
        replay = OpenLoopReplay(rows, client.send, run.local,
                                start_at=run.start_at, speedup=options.speedup, concurrency=options.replay_concurrency,
                                drain_s=options.drain_seconds or None, gate=http.slot)
        reporter = gevent.spawn(self._report_loop, run)
        try:
            replay.run()
        finally:
            reporter.kill()
            self._report(run)
            acks.close()
            http.close()
            node = self._node()
            self._send_to_master("replay_done", {"node": node})
        gevent.sleep(3600)  # the shape stops the test once every shard is done

    def _node(self) -> str:
        runner = self.environment.runner
        return getattr(runner, "client_id", "local")

    def _send_to_master(self, kind: str, data: dict) -> None:
        self.environment.runner.send_message(kind, data)

    def _report(self, run: ReplayRun) -> None:
        self._send_to_master("replay_stats", {"node": self._node(), "stats": run.local.snapshot()})

    def _report_loop(self, run: ReplayRun) -> None:
        while True:
            gevent.sleep(STATS_INTERVAL_S)
            self._report(run)
