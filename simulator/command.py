"""`segur simulate`: the command-line face of a simulation run."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click
from tqdm import tqdm

from simulator.run import STAGES, default_directory, run
from simulator.scenario import LEVELS, load_scenario, resolved_yaml


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected a date as YYYY-MM-DD, got {value!r}") from None


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--from", "start", callback=_date, metavar="YYYY-MM-DD", help="First simulated day (overrides the scenario).")
@click.option("--to", "end", callback=_date, metavar="YYYY-MM-DD", help="Last simulated day, inclusive (overrides the scenario).")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True, max=4), help="Multiplies every population; 1.0 = national.")
@click.option("--seed", type=int, help="Random seed (same seed, same output).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Result directory (default: results/<scenario>-<timestamp>/). Must not exist or be empty.")
@click.option("--bucket", type=click.Choice(["auto", "minute", "hour"]), default="auto", show_default=True,
              help="Time bucket of counts.parquet; auto = minute up to 31 days, hour beyond.")
@click.option("--schedule/--no-schedule", default=True, show_default=True,
              help="Write the replay window's schedule.parquet and corpus.parquet.")
@click.option("--plots/--no-plots", default=True, show_default=True, help="Draw the PNG plots.")
@click.option("--assumptions", "level", type=click.Choice(LEVELS), default="central", show_default=True,
              help="The level every assumption of the scenario takes (low/high: least/most traffic at the peak).")
@click.option("--ranges/--no-ranges", default=True, show_default=True,
              help="Also simulate each assumption at its low and high end: peak_hour_range and sensitivity.png.")
@click.option("--check", is_flag=True,
              help="Validate the scenario and print its resolved form (after extends:, assumptions applied) as YAML; "
                   "simulate nothing.")
def simulate(scenario: Path, start: dt.date | None, end: dt.date | None, scale: float | None, seed: int | None,
             out: Path | None, bucket: str, schedule: bool, plots: bool, level: str, ranges: bool, check: bool) -> None:
    """Simulate national document traffic from a SCENARIO file.

    Writes monthly.csv, summary.json, counts.parquet, schedule.parquet (the replay window,
    one row per request), corpus.parquet (the record's history at the window's start, the
    documents the window needs marked and first) and PNG plots, then
    prints the result directory. summary.json holds the calibration table (published figure,
    model, difference, tolerance, source), the assumptions and the peak hour's range across
    them (sensitivity.png: which assumption moves it most). Exit code 2 on bad input, with
    nothing written.

    \b
    Examples:
      segur simulate scenarios/baseline-2025.yaml --from 2024-10-01 --to 2025-10-31
      segur simulate scenarios/peak-day-2026.yaml --scale 0.01 --out results/peak-1pc
      segur simulate scenarios/peak-day-2026.yaml --assumptions high --no-ranges
      segur simulate scenarios/what-if-obligation-2026.yaml --check
    """
    loaded = load_scenario(scenario, level).with_overrides(start=start, end=end, scale=scale, seed=seed)
    if check:
        click.echo(f"# {scenario}: resolved (extends: merged, assumptions at {level})")
        click.echo(resolved_yaml(loaded), nl=False)
        return
    directory = out or default_directory(loaded)
    stages = [s for s in STAGES if (schedule or s != "replay schedule") and (plots or s != "plots")
              and (ranges or s != "assumption ranges")]
    with tqdm(total=len(stages), desc=loaded.name, unit="stage", disable=not sys.stderr.isatty(),
              bar_format="{desc:<50} {bar} {n_fmt}/{total_fmt} stages, {elapsed}") as bar:
        def advance(stage: str) -> None:
            if bar.n or stage != stages[0]:
                bar.update(1)
            bar.set_description_str(f"{loaded.name}: {stage}")

        result = run(loaded, directory, bucket=bucket, schedule=schedule, draw=plots, ranges=ranges, progress=advance)
        bar.update(bar.total - bar.n)
    summary = result.summary
    peak = summary["peak_hour"]
    click.echo(f"{loaded.name}: {loaded.period.start} .. {loaded.period.end}, scale {loaded.scale}, seed {loaded.seed}", err=True)
    click.echo(f"  professional deposits {summary['professional_deposits']:,} "
               f"(annualised {summary['annualised_deposit_rate'] / 1e6:,.1f} M/year)", err=True)
    click.echo(f"  peak hour {peak['start']}: {peak['per_second']:.1f} requests/s "
               f"({peak['deposits_per_second']:.1f} deposits/s, {peak['reads_per_second']:.1f} reads/s)", err=True)
    spread = summary["peak_hour_range"]
    if ranges and loaded.assumptions:
        click.echo(f"    across the assumptions: {spread['low']['requests_per_s']:.1f} (all low) .. "
                   f"{spread['high']['requests_per_s']:.1f} (all high) requests/s; moves it most: "
                   + ", ".join(f"{bar['name']} {bar['low']:.1f}..{bar['high']:.1f}"
                               for bar in summary["sensitivity"]["bars"][:3]), err=True)
    minute, second = summary["peak_minute"], summary["peak_second"]
    click.echo(f"  peak minute {minute['time']}: {minute['per_second']:.1f} requests/s; "
               f"peak second about {second['requests']:,.0f} requests ({second['time']})", err=True)
    if summary["events_outside_period"]:
        click.echo(f"  note: events outside the period, without effect: {', '.join(summary['events_outside_period'])}",
                   err=True)
    outside = [row for row in summary["calibration"] if not row["within"]]
    if not summary["calibration"]:
        click.echo("  calibration: no published point falls in this period", err=True)
    else:
        click.echo(f"  calibration: {len(summary['calibration']) - len(outside)}/{len(summary['calibration'])} published "
                   "points within tolerance" + "".join(f"\n    OUTSIDE {row['what']} {row['period']}: model "
                                                       f"{row['model']:,} vs {row['published']:,} ±{row['tolerance']}"
                                                       for row in outside), err=True)
    if "replay_window" in summary:
        window = summary["replay_window"]
        click.echo(f"  replay window {window['start']} ({window['minutes']} min): {window['operations']:,} requests, "
                   f"{window['corpus_documents']:,} documents of the corpus needed", err=True)
    if "corpus" in summary:
        corpus, national = summary["corpus"], summary["storage_by_year"][-1] if summary["storage_by_year"] else None
        click.echo(f"  corpus since {corpus['history_start']}: {corpus['documents']:,} documents, "
                   f"{corpus['bytes'] / 1e9:,.1f} GB at the scale ({corpus['rows']} rows written)"
                   + (f"; the nation's record at {national['until']}: {national['documents'] / 1e6:,.0f} M documents, "
                      f"{national['bytes'] / 1e12:,.0f} TB" if national else ""), err=True)
    click.echo(str(result.directory))
