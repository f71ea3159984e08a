"""Races between processes, for tests of what must hold whoever gets there first (files made on first use)."""

from __future__ import annotations

import multiprocessing
from typing import Any, Callable


def _racer(function: Callable[..., Any], args: tuple, barrier, results) -> None:
    barrier.wait()
    results.put(function(*args))


def race(function: Callable[..., Any], *args: Any, processes: int, timeout: float) -> list[Any]:
    """``function(*args)`` (a module-level callable) run at once in ``processes`` forked processes, released
    together by a barrier; asserts they all exit 0 (each waited for at most ``timeout`` seconds) and gives back
    what each returned, in the order they finished."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes), context.Queue()
    racers = [context.Process(target=_racer, args=(function, args, barrier, results)) for _ in range(processes)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout)
    assert [racer.exitcode for racer in racers] == [0] * processes
    return [results.get(timeout=5) for _ in racers]
