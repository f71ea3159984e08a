"""`segur seed` and `segur load`: put a run's corpus into a service, then replay its window with Locust."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from load import locust_report
from load.interactions import PROTOCOLS
from load.schedule import describe, planned_rows
from load.seed import seed as seed_corpus


@click.command()
@click.argument("result_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", required=True, help="The record service's base URL, e.g. http://127.0.0.1:8080.")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), default=Path(".segur/signing.key"),
              show_default=True, help="Token signing key shared with the service.")
@click.option("--threads", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Concurrent deposits (--no-bulk); with --bulk, at most 4 requests at once.")
@click.option("--corpus-gb", type=click.FloatRange(min=0), default=None,
              help="Seed, beyond the documents the window needs, the corpus's other documents (by its seed_order "
                   "column, else in file order) until this many GB are seeded in all. Default: the needed ones only.")
@click.option("--bulk/--no-bulk", default=True, show_default=True,
              help="Through the service's operator bulk load (many documents a request, idempotent: run it again "
                   "to complete a seed cut short), or one ITI-65 deposit per document by its author.")
def seed(result_dir: Path, target: str, key: Path, threads: int, corpus_gb: float | None, bulk: bool) -> None:
    """Load a simulation's corpus.parquet into a record service, before a replay.

    By default through the service's bulk load (POST /$bulk-load, with an operator token
    signed by --key): many documents a request, each stored as a deposit stores it, one
    transaction a request; a document already there is answered, never stored twice, so
    a seed cut short is completed by running it again. With --no-bulk, every document is
    deposited by its author (ITI-65), concurrently. A progress bar with ETA either way;
    the service's ids of the documents the window needs go to RESULT_DIR/locations.parquet,
    which `segur load` reads. The VIHF assertions of the window's professional interactions
    (one per professional and patient) are then signed ahead into RESULT_DIR/vihf.parquet,
    so that signing never paces a replay. Exit code 1 when some documents were refused.

    \b
    Examples:
      segur seed results/smoke-20251014 --target http://127.0.0.1:8080
      segur seed results/smoke-20251014 --target http://127.0.0.1:8080 --corpus-gb 40
      segur seed results/smoke-20251014 --target http://127.0.0.1:8080 --no-bulk --threads 32
    """
    corpus_bytes = None if corpus_gb is None else int(corpus_gb * 1e9)
    outcome, _ = seed_corpus(result_dir, target, key, threads=threads, corpus_bytes=corpus_bytes, bulk=bulk)
    if outcome.failures:
        sys.exit(1)


# the path only: importing the locustfile would import Locust, which monkey-patches this whole process
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def locust_command(schedule: Path, target: str, out: Path, *, speedup: float, key: Path, processes: int,
                   headless: bool = True, extra: tuple[str, ...] = (), protocol: str = "dmp") -> list[str]:
    """The `locust` command line that replays ``schedule`` into ``out``."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", target,
               "--schedule", str(schedule), "--speedup", str(speedup), "--key", str(key), "--protocol", protocol,
               "--acks", str(out / "acks.csv"), "--replay-report", str(out / "replay.json"),
               "--csv", str(out / "locust"), "--html", str(out / "locust.html"), "--loglevel", "WARNING",
               "--only-summary"]
    if headless:
        command += ["--headless"]
    if processes > 1:
        command += ["--processes", str(processes)]
    return command + list(extra)


@click.command()
@click.argument("result_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", required=True, help="The record service's base URL.")
@click.option("--speedup", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Replay N times faster than the scenario's clock.")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Local Locust worker processes, each sending its share of the schedule.")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), default=Path(".segur/signing.key"),
              show_default=True, help="Token signing key shared with the service.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where Locust's CSV/HTML, acks.csv and replay.json go (default: RESULT_DIR/load-<speedup>x).")
@click.option("--duration", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Play the window again and again for this many wall-clock seconds (0: once).")
@click.option("--drain-seconds", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="After the last row, wait at most this long for answers (0: until every answer comes).")
@click.option("--connections", type=click.IntRange(1, 100_000), default=256, show_default=True,
              help="HTTP connections per process; a request leaves (and its lateness is taken) once it has one.")
@click.option("--concurrency", type=click.IntRange(1, 1_000_000), default=4000, show_default=True,
              help="Most requests in flight per process (waiting for a connection or an answer).")
@click.option("--protocol", type=click.Choice(list(PROTOCOLS)), default="dmp", show_default=True,
              help="dmp: professionals over IHE XDS.b (SOAP, signed VIHF), patients over FHIR (the platform's mix); "
                   "xds: the professionals' XDS.b traffic alone; fhir: professionals over FHIR (ANS PDSm4DMP).")
def load(result_dir: Path, target: str, speedup: float, processes: int, key: Path, out: Path | None,
         duration: float, drain_seconds: float, connections: int, concurrency: int, protocol: str) -> None:
    """Replay a simulation's schedule against a record service as an open workload (Locust, headless).

    Every interaction (a consultation, a deposit, a document opened, a patient's action) leaves at its
    planned time divided by --speedup, and is sent as the calls of --protocol, one after the other
    (e.g. a professional's consultation over XDS.b: TD0.2, then ITI-18 queries); lateness is measured,
    not hidden. Locust's statistics list the calls and the interactions (type e.g. "consultation (xds)"). Writes Locust's CSV and HTML reports, the acknowledged deposits (acks.csv) and the
    replay's figures (replay.json). Every answer is checked, not only its status (a search lists
    only the searched patient's documents, a retrieve gives the bytes deposited, a deposit names its
    locations): a wrong answer is a failure, counted apart as "wrong_answers" in replay.json.
    Exit code 0 when every request was sent and answered OK, 1 otherwise (wrong answers included,
    and reads not sent because their document was never seeded: run `segur seed` first).
    For Locust's web UI instead: locust -f load/locustfile.py --schedule RESULT_DIR --host URL

    \b
    Example:
      segur seed results/smoke-20251014 --target http://127.0.0.1:8080
      segur load results/smoke-20251014 --target http://127.0.0.1:8080 --speedup 10
      segur load results/smoke-20251014 --target http://127.0.0.1:8080 --speedup 10 --protocol fhir
      segur load results/smoke-20251014 --target http://127.0.0.1:8080 --speedup 50 --duration 60 --connections 512
    """
    facts = describe(result_dir)
    out = out or result_dir / f"load-{speedup:g}x"
    out.mkdir(parents=True, exist_ok=True)
    rows = planned_rows(result_dir, facts.window_s, None, protocol)
    click.echo(f"replaying {rows:,} interactions ({facts.window_s / 60:.0f} min of scenario; professionals over "
               f"{'FHIR' if protocol == 'fhir' else 'XDS.b'}) at {speedup:g}x into {target}", err=True)
    extra = ("--replay-seconds", str(duration), "--drain-seconds", str(drain_seconds),
             "--connections", str(connections), "--replay-concurrency", str(concurrency))
    proc = subprocess.run(locust_command(result_dir, target, out, speedup=speedup, key=key, processes=processes,
                                         extra=extra, protocol=protocol), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    report_path = out / "replay.json"
    if not report_path.exists():
        raise click.ClickException(f"locust exited {proc.returncode} without a replay report")
    report = json.loads(report_path.read_text())
    locust_report.annotate(out / "locust.html", report)  # lateness and concurrency where a Locust user looks
    locust_report.write_csv(report, out / "locust_replay.csv")
    wrong = report.get("wrong_answers", 0)
    click.echo(f"sent {report['sent']:,}/{report['planned']:,}, failed {report['failed']:,} (wrong answers "
               f"{wrong:,}), lateness p99 {report['lateness_p99_ms']:,.1f} ms (taken when a request leaves, "
               f"connection in hand), at most {report.get('in_flight_max', 0):,} requests in flight "
               f"(see {out / 'locust.html'} and locust_replay.csv)", err=True)
    if report.get("not_sent"):
        by_operation = ", ".join(f"{operation} {count:,}" for operation, count in report["not_sent_by_operation"].items())
        click.echo(f"NOT SENT: {report['not_sent']:,} reads of documents the service never acknowledged "
                   f"({by_operation}): seed the corpus first (segur seed {result_dir} --target {target})", err=True)
    if wrong:
        by_operation = ", ".join(f"{operation} {count:,}"
                                 for operation, count in report.get("wrong_answers_by_operation", {}).items())
        click.echo(f"WRONG ANSWERS: {wrong:,} answers with an accepted status did not hold what was asked "
                   f"({by_operation}); kinds in {out / 'locust_failures.csv'}, the first ones logged above", err=True)
    click.echo(str(out))
    done = proc.returncode == 0 and report["sent"] == report["planned"] and not report["failed"] and not wrong
    sys.exit(0 if done else 1)
