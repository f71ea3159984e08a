"""Shared fixtures: scenarios loaded once, small national runs cached for the module."""

from pathlib import Path

import pytest

from simulator.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="session")
def scenarios_dir() -> Path:
    return SCENARIOS


@pytest.fixture(scope="session")
def smoke():
    return load_scenario(SCENARIOS / "smoke.yaml")


@pytest.fixture(scope="session")
def baseline():
    return load_scenario(SCENARIOS / "baseline-2025.yaml")
