"""The pictures a capacity planner looks at before reading numbers (PNG, matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from simulator.calendar import MINUTES_PER_DAY  # noqa: E402
from simulator.engine import OPERATIONS, READS, Traffic  # noqa: E402
from simulator.outputs import daily_counts, monthly_counts  # noqa: E402
from simulator.published import DEPOSIT_FIGURES  # noqa: E402
from simulator.scenario import PROFESSIONAL_SECTORS, SECTORS  # noqa: E402
from simulator.schedule import ReplayPlan  # noqa: E402

_COLOURS = dict(zip(SECTORS, plt.get_cmap("tab10").colors))
_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def monthly_deposits(traffic: Traffic, path: Path) -> None:
    """Professional deposits per month by sector, with the published figures as markers."""
    months, table = monthly_counts(traffic)
    deposits = table[:, OPERATIONS.index("deposit")]
    figure, axis = plt.subplots(figsize=(max(7, len(months) * 0.35), 4.5))
    bottom = np.zeros(len(months))
    for sector in PROFESSIONAL_SECTORS:
        values = deposits[:, SECTORS.index(sector)] / 1e6
        axis.bar(months, values, bottom=bottom, label=sector, color=_COLOURS[sector], width=0.8)
        bottom += values
    for figure_ in DEPOSIT_FIGURES:
        if figure_.period in months and figure_.unit == "documents" and figure_.type_code is None:
            axis.errorbar(figure_.period, figure_.published / 1e6, yerr=figure_.published * figure_.tolerance / 1e6,
                          fmt="D", color="black", markersize=6, capsize=3,
                          label=f"published {figure_.period}: {figure_.published / 1e6:.1f} M ±{figure_.tolerance:.0%}")
    axis.set_ylabel("documents deposited by professionals (millions)")
    axis.set_title(f"{traffic.scenario.name}: monthly deposits against published figures")
    axis.tick_params(axis="x", rotation=90, labelsize=7)
    axis.legend(fontsize=7, ncol=2)
    _save(figure, path)


def average_day(traffic: Traffic, path: Path) -> None:
    """Mean rate over the minutes of the day: deposits by sector, and all reads."""
    days = traffic.calendar.days
    figure, axis = plt.subplots(figsize=(9, 4.5))
    hours = np.arange(MINUTES_PER_DAY) / 60.0
    for sector in SECTORS:
        per_minute = traffic.series("deposit", sector).reshape(days, MINUTES_PER_DAY).mean(axis=0) / 60.0
        axis.plot(hours, _smooth(per_minute, 10), label=f"{sector} deposits", color=_COLOURS[sector], lw=1.2)
    reads = traffic.total(operations=READS).reshape(days, MINUTES_PER_DAY).mean(axis=0) / 60.0
    axis.plot(hours, _smooth(reads, 10), label="all reads (search + retrieve)", color="black", lw=1.6, ls="--")
    axis.set_xlim(0, 24)
    axis.set_xticks(range(0, 25, 2))
    axis.set_xlabel("hour of day")
    axis.set_ylabel("requests per second (10-min mean)")
    axis.set_title(f"{traffic.scenario.name}: the average day")
    axis.legend(fontsize=7, ncol=2)
    _save(figure, path)


def weekly_profile(traffic: Traffic, path: Path) -> None:
    """Mean rate per hour of the week (Monday 00:00 to Sunday 24:00): deposits and reads."""
    hourly_deposits = traffic.total(operations=("deposit",)).reshape(-1, 60).sum(axis=1) / 3600.0
    hourly_reads = traffic.total(operations=READS).reshape(-1, 60).sum(axis=1) / 3600.0
    weekday = np.repeat(traffic.calendar.weekday.astype(np.int64), 24)
    hour_of_week = weekday * 24 + np.tile(np.arange(24), traffic.calendar.days)
    figure, axis = plt.subplots(figsize=(10, 4))
    for values, label in ((hourly_deposits, "deposits"), (hourly_reads, "reads")):
        sums = np.bincount(hour_of_week, weights=values, minlength=168)
        seen = np.bincount(hour_of_week, minlength=168)
        axis.plot(np.arange(168), np.divide(sums, seen, out=np.full(168, np.nan), where=seen > 0), label=label)
    axis.set_xticks(np.arange(0, 168, 24) + 12, _WEEKDAYS)
    for day in range(1, 7):
        axis.axvline(day * 24, color="grey", lw=0.5)
    axis.set_ylabel("requests per second (hourly mean)")
    axis.set_title(f"{traffic.scenario.name}: weekly profile")
    axis.legend()
    _save(figure, path)


def timeline(traffic: Traffic, path: Path) -> None:
    """Deposits over the whole period (per hour for short periods, per day otherwise), events shaded."""
    short = traffic.calendar.days <= 31
    figure, axis = plt.subplots(figsize=(10, 4))
    if short:
        per_bucket = traffic.counts[OPERATIONS.index("deposit")].reshape(len(SECTORS), -1, 60).sum(axis=2)
        x = np.datetime64(traffic.calendar.start, "m") + np.arange(per_bucket.shape[1]).astype("timedelta64[h]")
        unit = "hour"
    else:
        per_bucket = daily_counts(traffic)[OPERATIONS.index("deposit")]
        x = traffic.calendar.dates
        unit = "day"
    axis.stackplot(x.astype("datetime64[m]").astype(object), per_bucket / 1e3,
                   labels=SECTORS, colors=[_COLOURS[s] for s in SECTORS])
    down = np.flatnonzero(traffic.platform_down)
    if down.size:
        axis.axvspan(traffic.calendar.moment(down[0]), traffic.calendar.moment(down[-1] + 1), color="red", alpha=0.15,
                     label="platform down")
    axis.set_ylabel(f"deposits per {unit} (thousands)")
    axis.set_title(f"{traffic.scenario.name}: deposits over the period")
    axis.legend(fontsize=7, ncol=3)
    figure.autofmt_xdate()
    _save(figure, path)


def replay_window(plan: ReplayPlan, path: Path) -> None:
    """The schedule's planned rate per operation, in 10-second bins."""
    rows = plan.rows
    seconds = plan.window.minutes * 60
    edges = np.arange(0, seconds + 10, 10)
    figure, axis = plt.subplots(figsize=(10, 4))
    for index, operation in enumerate(OPERATIONS):
        mine = rows["offset_s"][rows["operation"] == index]
        if mine.size:
            counts, _ = np.histogram(mine, edges)
            axis.plot(edges[:-1] / 60.0, counts / 10.0, label=f"{operation} ({mine.size})", lw=1)
    axis.set_xlabel(f"minutes from {plan.window.start:%Y-%m-%d %H:%M}")
    axis.set_ylabel("requests per second (10-s bins)")
    axis.set_title(f"replay window: {rows['offset_s'].size} requests in {plan.window.minutes} min")
    axis.legend(fontsize=8)
    _save(figure, path)


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    kernel = np.ones(width) / width
    return np.convolve(np.concatenate([values[-width:], values, values[:width]]), kernel, mode="same")[width:-width]


def tornado(sensitivity: dict, levels: dict, scenario_name: str, path: Path) -> None:
    """Which assumption moves the peak hour most: one bar per assumption, low end to high end (requests/s)."""
    bars = sensitivity["bars"][::-1]
    figure, axis = plt.subplots(figsize=(8, max(3.0, 0.38 * len(bars) + 1.5)))
    base = bars[0]["base"] if bars else levels["central"]["requests_per_s"]
    for row, bar in enumerate(bars):
        axis.barh(row, bar["low"] - base, left=base, color="#4c72b0", height=0.6, label="low" if row == 0 else None)
        axis.barh(row, bar["high"] - base, left=base, color="#dd8452", height=0.6, label="high" if row == 0 else None)
        axis.text(max(bar["low"], bar["high"], base), row, f"  {bar['low']:.1f} – {bar['high']:.1f}", va="center", fontsize=7)
    axis.axvline(base, color="black", linewidth=1)
    axis.set_yticks(range(len(bars)), [bar["name"] for bar in bars], fontsize=8)
    axis.set_xlabel("peak-hour requests per second (each assumption alone at its low / high end)")
    low, central, high = (levels[level]["requests_per_s"] for level in ("low", "central", "high"))
    axis.set_title(f"{scenario_name}: peak hour {central:.1f} req/s, all low {low:.1f} – all high {high:.1f}", fontsize=10)
    axis.legend(fontsize=8, loc="lower right")
    _save(figure, path)


def draw_all(traffic: Traffic, plan: ReplayPlan | None, directory: Path, ranges: dict | None = None) -> list[str]:
    drawn = {
        "monthly_deposits.png": lambda p: monthly_deposits(traffic, p),
        "average_day.png": lambda p: average_day(traffic, p),
        "weekly_profile.png": lambda p: weekly_profile(traffic, p),
        "timeline.png": lambda p: timeline(traffic, p),
    }
    if plan is not None:
        drawn["replay_window.png"] = lambda p: replay_window(plan, p)
    if ranges is not None:
        drawn["sensitivity.png"] = lambda p: tornado(ranges["sensitivity"], ranges["peak_hour_range"],
                                                     traffic.scenario.name, p)
    for name, draw in drawn.items():
        draw(directory / name)
    return list(drawn)
