"""Fixtures every test package shares."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from segur.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """``segur simulate scenarios/smoke.yaml`` once for the session: a small result directory to replay."""
    out = tmp_path_factory.mktemp("simulation") / "smoke"
    result = CliRunner().invoke(main, ["simulate", str(ROOT / "scenarios" / "smoke.yaml"), "--out", str(out),
                                       "--no-plots"])
    assert result.exit_code == 0, result.output
    return out
