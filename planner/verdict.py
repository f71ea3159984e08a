"""The verdict for the nation: how many times the national traffic of the window the service holds.

A plan replays a scenario's window at scale ``s`` (a sample of the nation) and finds the highest
speed-up ``S`` that keeps the SLO. The service then holds ``S x s`` times the national traffic
of that window, at the assumption level the scenario was simulated at (central). The scenario's
``peak_hour_range`` says how much more or less national traffic the low and high assumptions
give at the peak hour; the headroom at each level scales by that ratio. A plan *holds* when the
headroom at the level asked for (``--assume``) reaches the headroom asked for (``--headroom``)
and no answer was wrong.
"""

from __future__ import annotations

LEVELS = ("low", "central", "high")


def national_headroom(max_speedup: float, summary: dict) -> dict[str, float]:
    """{"low", "central", "high"}: multiples of the window's national traffic the service holds at each level.

    ``summary``: the simulation's summary.json (``scale``, ``peak_hour_range``). Equal at every
    level when the scenario has no assumption ranges.
    """
    at_scale = max_speedup * summary["scale"]
    ranges = summary.get("peak_hour_range") or {}
    simulated = summary.get("assumption_level", "central")
    reference = (ranges.get(simulated) or {}).get("requests_per_s")
    headroom = {}
    for level in LEVELS:
        rate = (ranges.get(level) or {}).get("requests_per_s")
        ratio = reference / rate if reference and rate else 1.0
        headroom[level] = round(at_scale * ratio, 4)
    return headroom


def holds(headroom: dict[str, float], required: float, assume: str, wrong_answers: int) -> bool:
    """True when the headroom at ``assume`` reaches ``required`` and the service gave no wrong answer."""
    return wrong_answers == 0 and headroom[assume] >= required


def banner(plan: dict) -> str:
    """One line: HOLDS / DOES NOT HOLD the national <window> of <scenario>, with N x headroom (range a-b)."""
    headroom, assume, window = plan["national_headroom"], plan["assume"], plan["window"]
    state = "HOLDS" if plan["holds"] else "DOES NOT HOLD"
    ask = f" (asked: {plan['headroom_required']:g}x at the {assume} assumptions)"
    return (f"{state} the national {window['minutes']}-minute peak window of {plan['scenario']}, with "
            f"{headroom[assume]:.3g}x headroom (range {headroom['high']:.3g}x-{headroom['low']:.3g}x over the "
            f"assumptions, high to low traffic){ask}")
