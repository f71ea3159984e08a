"""Replay a simulated schedule against a record service with Locust, as an open workload.

    locust -f load/locustfile.py --schedule results/<run>/ --host http://127.0.0.1:8080

opens Locust's web UI with our options (speed-up first, schedule, key…) in its start form and a
"Replay" page (/replay/) that draws, run by run, the scenario's planned rate against the achieved
rate, the lateness, failures and wrong answers. `segur load` and `segur plan` drive the same file
headless.

One replayer runs per process (a load shape keeps one user per worker): it sends its shard of
the schedule, every row at its planned time. With workers (`--processes N`, or
`locust --worker --master-host H` on other machines), the master gives each its shard and a
common start time; shards are by patient, so together they send every row exactly once.

Every Start from the web form is a new run (numbered; the master's messages carry its number),
replaying the schedule anew with the form's options as they are then. The master sends its paths
(schedule, key, locations, acks) absolute; a worker uses them when they exist on its machine, and
its own command line's otherwise (a worker with its copy elsewhere gives `--schedule` and `--key`).
"""

from __future__ import annotations

import gc
import json
import logging
import resource
import time
from pathlib import Path

import gevent
from gevent.event import Event
from locust import LoadTestShape, User, events, task
from locust.runners import MasterRunner, WorkerRunner

from load.client import AckLog, Assertions, Locations, RecordClient, Tokens
from load.http import RecordHttp
from load.interactions import PROTOCOLS, CallPatterns, route, scenario_clock
from load.replay import OpenLoopReplay
from load.requests import DocumentBytes
from load.schedule import Shard, describe, read_rows, replay_rows
from load.webpage import PageStats, RunBook, RunRecord, add_replay_page, extend_locust_ui, plan_of

START_DELAY_S = 2.0        # time for every worker to get its shard before the first row is due
STATS_INTERVAL_S = 1.0


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser  # Locust's parser takes include_in_web_ui; its argument groups do not
    group.add_argument("--speedup", type=float, default=1.0,
                       help="replay N times faster than the scenario: this sets the load; users and ramp-up do not apply")
    group.add_argument("--schedule", default="", help="schedule.parquet, or the simulator's result directory")
    group.add_argument("--protocol", default="dmp", choices=list(PROTOCOLS),
                       help="the professionals' interface: dmp (XDS.b; patients over FHIR), xds (XDS.b alone), "
                            "fhir (PDSm4DMP)")
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


PATH_OPTIONS = ("schedule", "key", "locations", "acks")


class ReplayRun:
    """The replay's state in one Locust process (master, worker or local).

    The master (or the local runner) keeps every run in ``book``; the run being replayed by this process
    is ``number``, with its shard, start time and figures (``local``), all replaced when a new shard comes."""

    def __init__(self, environment) -> None:
        self.environment = environment
        self.book = RunBook()             # master/local: every run of this process
        self.number = 0                   # the run this process replays (its shard's)
        self.shard: Shard | None = None
        self.start_at = 0.0
        self.speedup = 1.0                # the run's, as the master gave it
        self.replay_limit_s: float | None = None
        self.run_tag = ""
        self.protocol = "dmp"
        self.ready = Event()              # set by a run's shard, cleared when the run stops
        self.local = PageStats()          # what this process sent in run ``number``
        self.replaying = 0                # the run this process's replayer was started for
        self.own_paths: dict[str, str] = {}  # worker: the paths of its own command line, absolute
        self._facts: tuple[str, object] | None = None

    @property
    def options(self):
        return self.environment.parsed_options

    def schedule_facts(self, schedule: str | None = None):
        """The schedule's counts and window, read once per schedule (the form may change it between runs)."""
        schedule = str(schedule or self.options.schedule)
        if self._facts is None or self._facts[0] != schedule:
            self._facts = (schedule, describe(schedule))
        return self._facts[1]

    def limit_s(self) -> float | None:
        """Scenario seconds to replay, None for one pass over the window."""
        seconds = self.options.replay_seconds
        return seconds * self.options.speedup if seconds and seconds > 0 else None

    def paths(self) -> dict[str, str]:
        """The files this process uses: the master's paths (absolute) when they are on this machine, else this
        process's own options (a worker started elsewhere, with its copy of the result directory and key)."""
        chosen = {}
        for name in PATH_OPTIONS:
            given = str(getattr(self.options, name, "") or "")
            own = self.own_paths.get(name, "")
            usable = given and (Path(given).parent.is_dir() if name == "acks" else Path(given).exists())
            chosen[name] = given if usable or not own else own
        return chosen

    def report(self) -> dict | None:
        """The latest run's figures, as replay.json holds them."""
        record = self.book.latest
        if record is None:
            return None
        stats = record.merged()
        plan = record.plan()
        replayed = record.limit_s or record.window_s
        return {"schedule": record.schedule, "speedup": record.speedup, "workers": record.workers,
                "planned": plan.total if plan else 0, "window_s": record.window_s, "replayed_scenario_s": replayed,
                "wall_s": replayed / record.speedup, **stats.summary(), "rates": stats.rates()}


def _run(environment) -> ReplayRun:
    return environment.replay_run


@events.init.add_listener
def _init(environment, **_kwargs) -> None:
    environment.replay_run = run = ReplayRun(environment)
    runner = environment.runner
    _raise_open_file_limit()
    _calm_garbage_collector()
    if isinstance(runner, WorkerRunner) and environment.parsed_options is not None:
        # before the master's options replace them: what this worker was told on its own command line
        run.own_paths = {name: str(Path(value).expanduser().resolve())
                         for name in PATH_OPTIONS if (value := getattr(environment.parsed_options, name, ""))}
    if not isinstance(runner, MasterRunner):
        runner.register_message("replay_shard", lambda msg, **_: _take_shard(run, msg.data))
    if not isinstance(runner, WorkerRunner):
        runner.register_message("replay_stats", lambda msg, **_: run.book.take_stats(
            msg.data.get("run"), msg.data["node"], msg.data["stats"], msg.data.get("seconds")))
        runner.register_message("replay_done", lambda msg, **_: run.book.take_done(
            msg.data.get("run"), msg.data["node"], msg.data.get("error")))
    if environment.web_ui:
        base = getattr(environment.parsed_options, "web_base_path", "") or ""
        add_replay_page(environment.web_ui.app, run.book, base)
        extend_locust_ui(environment.web_ui, run.book, base)


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
    """A run begins in this process: its number, shard and start time, and figures of its own."""
    run.number = data.get("run", run.number + 1)
    run.shard = Shard(data["index"], data["count"])
    run.start_at = data["start_at"]
    run.speedup = data.get("speedup") or run.options.speedup
    run.replay_limit_s = data["limit_s"] if "limit_s" in data else run.limit_s()
    run.run_tag = data.get("run_tag", run.options.run_tag)
    run.protocol = data.get("protocol") or getattr(run.options, "protocol", "dmp") or "dmp"
    run.local = PageStats()
    run.ready.set()


def _absolute_paths(options) -> None:
    """Paths as the master sees them, made absolute: workers started in another directory read the same files."""
    for name in PATH_OPTIONS:
        value = getattr(options, name, "")
        if value:
            setattr(options, name, str(Path(value).expanduser().resolve()))


def _active_workers(runner) -> list[str]:
    clients = runner.clients
    return sorted(node.id for node in clients.ready + clients.spawning + clients.running)


@events.test_start.add_listener
def _start(environment, **_kwargs) -> None:
    """A new run (a Start in the web form, or the headless run): replay the schedule anew, with the options
    as they are now. Workers get theirs in a message (before Locust's spawn message, which starts their user)."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return
    run = _run(environment)
    options = run.options
    _absolute_paths(options)
    workers = _active_workers(runner) if isinstance(runner, MasterRunner) else ["local"]
    schedule, speedup = str(options.schedule or ""), float(options.speedup)
    protocol = str(getattr(options, "protocol", "dmp") or "dmp")
    try:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown --protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")
        if not schedule:
            raise ValueError("no --schedule: give a schedule.parquet or a `segur simulate` result directory")
        if speedup <= 0:
            raise ValueError(f"the speed-up must be positive, not {speedup:g}")
        window_s, limit_s = run.schedule_facts().window_s, run.limit_s()
    except Exception as error:  # noqa: BLE001 - a run that cannot start is shown as such, and ends at once
        record = run.book.begin(speedup=speedup, schedule=schedule, start_at=time.time(), workers=1)
        record.take_done("master", f"this run cannot start: {error}")
        logging.getLogger(__name__).error("run %d cannot start: %s", record.number, error)
        environment.process_exit_code = 2
        return
    record = run.book.begin(speedup=speedup, schedule=schedule, start_at=time.time() + START_DELAY_S,
                            workers=max(len(workers), 1), window_s=window_s, limit_s=limit_s,
                            planner=lambda: plan_of(schedule, window_s, limit_s, speedup, protocol))
    if environment.web_ui:
        record.plan()  # now, before the first row is due, rather than at a page refresh in the middle of the run
    # a later run's deposits are new documents, as the first run's were (not idempotent repeats of them)
    run_tag = ".".join(part for part in (options.run_tag, f"run{record.number}" if record.number > 1 else "") if part)
    shard = {"start_at": record.start_at, "run": record.number, "speedup": speedup, "limit_s": limit_s,
             "run_tag": run_tag, "protocol": protocol}
    if isinstance(runner, MasterRunner):
        for index, client_id in enumerate(workers):
            runner.send_message("replay_shard", {**shard, "index": index, "count": len(workers)}, client_id=client_id)
    else:
        _take_shard(run, {**shard, "index": 0, "count": 1})


@events.test_stop.add_listener
def _stop(environment, **_kwargs) -> None:
    """The run is over (done, or stopped from the UI): the next Start is a new one."""
    run = _run(environment)
    run.ready.clear()
    if not isinstance(environment.runner, WorkerRunner):
        run.book.end()


@events.quitting.add_listener
def _write_report(environment, **_kwargs) -> None:
    run = getattr(environment, "replay_run", None)
    if run is None or isinstance(environment.runner, WorkerRunner) or not run.options.replay_report:
        return
    report = run.report()
    if report is None:
        return
    Path(run.options.replay_report).write_text(json.dumps(report, indent=1))
    # pipelines read the exit code: a replay that sent fewer rows than planned did not do its job
    if report["sent"] != report["planned"] and environment.process_exit_code in (None, 0):
        environment.process_exit_code = 3
    # a wrong answer (another patient's document, other bytes, no location) is never a served request
    if report["wrong_answers"] and environment.process_exit_code in (None, 0):
        environment.process_exit_code = 1


def _sign_ahead(tokens: Tokens, assertions: Assertions, protocol: str, rows, until: float) -> None:
    """Sign the first actors' tokens and VIHF assertions while waiting for the start: a burst of new actors would
    otherwise cost signing time right when the first requests are due."""
    for row in rows:
        if time.time() >= until:
            return
        if route(protocol, row) == "xds":
            assertions.for_row(row)
        else:
            tokens.header(row)


class ReplayShape(LoadTestShape):
    """One user per worker process while a run replays; stops the test when every shard is done.

    Between runs (before a Start's test_start has made the new run) it starts one: the previous run's
    end is never taken for the new one's."""

    def tick(self):
        runner = self.runner
        record: RunRecord | None = _run(runner.environment).book.active
        if record is None:  # a new run begins
            workers = max(len(_active_workers(runner)), 1) if isinstance(runner, MasterRunner) else 1
            return workers, workers
        if record.finished():
            return None
        # a bound, should a worker never report: the run's wall time, with a wide margin
        limit = (record.limit_s or record.window_s) / max(record.speedup, 1e-9) + 120 + 10 * START_DELAY_S
        if time.time() - record.start_at > limit:
            return None
        return record.workers, record.workers


class ScheduleReplayer(User):
    """The process's replayer. The pool inside it, not the number of users, sets the concurrency."""

    @task
    def replay(self) -> None:
        run = _run(self.environment)
        if not run.ready.wait(timeout=60):
            raise RuntimeError("no shard from the master within 60 s")
        if run.replaying == run.number:  # this run is replayed already, by another user of this process
            gevent.sleep(3600)
            return
        run.replaying = number = run.number
        stats, shard, start_at, speedup, limit_s = run.local, run.shard, run.start_at, run.speedup, run.replay_limit_s
        run_tag, protocol = run.run_tag, run.protocol
        options = run.options
        node = self._node()
        replay, reporter, acks, http, error = None, None, None, None, None
        try:
            paths = run.paths()
            if not Path(paths["schedule"]).exists():
                raise FileNotFoundError(f"schedule {paths['schedule']} is not on this machine: start this worker "
                                        "with --schedule (and --key) pointing at its copy of the result directory")
            if isinstance(self.environment.runner, WorkerRunner) and not Path(paths["key"]).exists():
                # not made here: a key of its own would sign tokens the service refuses
                raise FileNotFoundError(f"signing key {paths['key']} is not on this machine: start this worker "
                                        "with --key pointing at its copy of the service's key")
            schedule = Path(paths["schedule"])
            folder = schedule if schedule.is_dir() else schedule.parent
            locations = Locations.load(paths["locations"] or folder / "locations.parquet")
            acks = AckLog(paths["acks"] or None)
            tokens = Tokens(paths["key"])
            assertions = Assertions(paths["key"], signed=stats.signatures, ahead=folder / "vihf.parquet",
                                    create=not isinstance(self.environment.runner, WorkerRunner))
            facts = run.schedule_facts(str(schedule))
            _sign_ahead(tokens, assertions, protocol, read_rows(schedule, shard, protocol=protocol),
                        until=start_at - 0.2)
            http = RecordHttp(self.host or self.environment.host, self.environment.events.request,
                              connections=options.connections, calls=stats.calls)
            client = RecordClient(http, tokens, locations, acks, DocumentBytes(), self.environment.events.request,
                                  run_tag=run_tag, protocol=protocol, patterns=CallPatterns.from_metadata(facts.metadata),
                                  assertions=assertions, stats=stats, clock=scenario_clock(facts.metadata))
            rows = replay_rows(schedule, shard, facts.window_s, limit_s, protocol=protocol)
            replay = OpenLoopReplay(rows, client.send, stats,
                                    start_at=start_at, speedup=speedup, concurrency=options.replay_concurrency,
                                    drain_s=options.drain_seconds or None, gate=http.slot, label=client.label)
            reporter = gevent.spawn(self._report_loop, number, stats)
            replay.run()
        except Exception as failure:  # said on the Replay page, in Locust's exceptions, and the run ends
            error = f"{node}: {failure}"
            raise
        finally:
            if reporter is not None:
                reporter.kill()
            if replay is not None:
                replay.pool.kill(block=False)  # stopped from the UI: requests in flight go with the run
            self._report(number, stats)
            if acks is not None:
                acks.close()
            if http is not None:
                http.close()
            self._send_to_master("replay_done", {"node": node, "run": number, "error": error})
        gevent.sleep(3600)  # the shape stops the test once every shard is done

    def _node(self) -> str:
        runner = self.environment.runner
        return getattr(runner, "client_id", "local")

    def _send_to_master(self, kind: str, data: dict) -> None:
        self.environment.runner.send_message(kind, data)

    def _report(self, number: int, stats: PageStats) -> None:
        self._send_to_master("replay_stats", {"node": self._node(), "run": number, "stats": stats.snapshot(),
                                              "seconds": stats.take_seconds()})

    def _report_loop(self, number: int, stats: PageStats) -> None:
        while True:
            gevent.sleep(STATS_INTERVAL_S)
            self._report(number, stats)
