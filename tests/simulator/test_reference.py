"""The generated scenario reference: committed up to date, and every key of a scenario explained."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("scenario_reference", ROOT / "tools" / "scenario_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_reference_is_what_the_generator_prints(generator):
    committed = (ROOT / "docs" / "scenario-reference.md").read_text(encoding="utf-8")
    assert committed == generator.reference() + "\n", \
        "run uv run python tools/scenario_reference.py > docs/scenario-reference.md"


def test_every_model_has_a_docstring_and_every_key_a_meaning(generator):
    reachable = generator.reachable_models()
    assert len(reachable) > 10  # the walk does reach the nested models
    undocumented = [model.__name__ for model in reachable if not (model.__doc__ or "").strip()]
    unexplained = [f"{model.__name__}.{name}" for model in reachable for name, info in model.model_fields.items()
                   if not (info.description or "").strip()]
    assert not undocumented, f"models without a docstring: {', '.join(undocumented)}"
    assert not unexplained, f"keys without a description (meaning and unit): {', '.join(unexplained)}"


def test_every_event_kind_is_in_the_reference(generator):
    text = generator.reference()
    kinds = [generator._kind(model) for model in generator.event_models()]
    assert len(kinds) == 6 and all(kinds)
    for model, kind in zip(generator.event_models(), kinds):
        assert f"| `{kind}` | [{model.__name__}](#{model.__name__.lower()}) |" in text
        assert f"## {model.__name__}\n" in text


def test_types_and_ranges_are_readable(generator):
    text = generator.reference()
    assert "| `sectors` | mapping sector → [Sector](#sector) |" in text
    assert "mapping name → event (one of: [LabStrike](#labstrike), [Outage](#outage)" in text
    assert "| `hourly` | list of 24 numbers | **required** | each >= 0 |" in text
    assert "| `dmp_share` | [ShareCurveKnots](#sharecurveknots) or [Adoption](#adoption) |" in text
    assert "| `withheld_share` | number | **required** | 0 .. 1 |" in text  # Fraction, an Annotated alias
    assert "| `cap` | number or null | `null` | >= 0 |" in text  # NonNegative inside an Optional
    assert "Literal[" not in text and "Union[" not in text and "Annotated[" not in text
