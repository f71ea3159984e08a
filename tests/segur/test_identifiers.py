"""The identifier validators against known-good and known-bad values, and the generators against the validators."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segur.identifiers import (finess_for_facilities, ins_for_patients, ins_key, is_valid_finess, is_valid_ins,
                               is_valid_rpps, luhn_complete, rpps_for_professionals)

# from the ANS INS documentation (shared/reference/dmp-domain.md), two of them Corsican
GOOD_INS = ["295109912611193", "253072A07300443", "253072B07300470"]


def _reference_luhn_ok(number: str) -> bool:
    """Luhn written the textbook way, independently of the project's code."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d // 10 + d % 10
    return total % 10 == 0


@pytest.mark.parametrize("ins", GOOD_INS)
def test_known_good_ins(ins):
    assert is_valid_ins(ins)


@pytest.mark.parametrize("ins", [
    "295109912611194",      # wrong key
    "253072A07300444",      # wrong key, Corsica
    "253072B07300443",      # 2A's key on a 2B number
    "29510991261119",       # too short
    "2951099126111933",     # too long
    "29510991261119X",      # letter in the key
    "2951X9912611193",      # letter in the body
    "395109912611193",      # no NIR starts with 3 (key made right below would still be refused)
    "",
    None,
    295109912611193,
])
def test_known_bad_ins(ins):
    assert not is_valid_ins(ins)


def test_corsica_counts_as_19_and_18():
    assert ins_key("253072A073004") == 97 - int("2530719073004") % 97
    assert ins_key("253072B073004") == 97 - int("2530718073004") % 97


@pytest.mark.parametrize("value, ok", [
    ("10000000009", True), ("10000000008", False), ("1000000000", False), ("1000000000a", False), ("", False)])
def test_rpps(value, ok):
    assert is_valid_rpps(value) is ok
    if len(value) == 11 and value.isdigit():
        assert _reference_luhn_ok(value) is ok


@pytest.mark.parametrize("value, ok", [
    ("010000008", True), ("010000009", False), ("01000000", False), ("0100000080", False), ("01000000x", False)])
def test_finess(value, ok):
    assert is_valid_finess(value) is ok


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_luhn_complete_agrees_with_the_textbook(body):
    number = luhn_complete(body)
    assert _reference_luhn_ok(number) and is_valid_rpps(number)


@given(st.integers(1, 10**8), st.lists(st.integers(0, 10**8 - 1), min_size=1, max_size=50))
def test_generated_ins_are_valid_and_distinct(pool, numbers):
    numbers = [n % pool for n in numbers]
    values = ins_for_patients(np.array(numbers), pool)
    assert all(is_valid_ins(v) for v in values)
    assert len(set(values.tolist())) == len(set(numbers))


def test_generated_ins_cover_corsica_and_are_stable():
    values = ins_for_patients(np.arange(200_000), 65_000_000)
    assert any(v[5:7] in ("2A", "2B") for v in values)
    assert len(set(values.tolist())) == values.size
    np.testing.assert_array_equal(values[:100], ins_for_patients(np.arange(100), 65_000_000))


def test_generated_rpps_and_finess_are_valid_and_distinct():
    rpps = rpps_for_professionals(np.arange(0, 10**8, 997))
    finess = finess_for_facilities(np.arange(0, 95 * 10**6, 9973))
    assert all(is_valid_rpps(v) for v in rpps) and len(set(rpps.tolist())) == rpps.size
    assert all(is_valid_finess(v) for v in finess) and len(set(finess.tolist())) == finess.size


@given(st.integers(0, 10**8 - 1), st.integers(0, 10), st.integers(1, 9))
def test_a_changed_digit_is_caught(number, position, delta):
    for value, valid in ((rpps_for_professionals(np.array([number]))[0], is_valid_rpps),
                         (ins_for_patients(np.array([number % 65_000_000]), 65_000_000)[0], is_valid_ins)):
        position_in = min(position, len(value) - 1)
        if not value[position_in].isdigit():
            continue
        changed = value[:position_in] + str((int(value[position_in]) + delta) % 10) + value[position_in + 1:]
        assert not valid(changed)


def test_generators_refuse_out_of_range():
    with pytest.raises(ValueError):
        ins_for_patients(np.array([5]), 5)
    with pytest.raises(ValueError):
        rpps_for_professionals(np.array([10**8]))
