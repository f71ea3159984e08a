"""FHIR R4 primitive datatypes: what the specification allows is accepted, what it forbids is a 400 naming the path."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from record_service import fhir_types
from record_service.outcomes import ServiceError


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1_000_000)


@pytest.mark.parametrize("value,expected", [
    ("2026-06-12T10:00:00+02:00", "2026-06-12T08:00:00+00:00"),
    ("2026-06-12T10:00:00Z", "2026-06-12T10:00:00+00:00"),
    ("2026-06-12T10:00:00.123456789-05:30", "2026-06-12T15:30:00.123456+00:00"),
    ("2026-06-12T10:00:00+14:00", "2026-06-11T20:00:00+00:00"),
])
def test_an_instant_is_read_to_the_microsecond_in_utc(value, expected):
    assert fhir_types.instant(value, "date") == _us(expected)


def test_a_leap_second_is_the_instant_after_the_last_second():
    assert fhir_types.instant("2016-12-31T23:59:60Z", "date") == _us("2017-01-01T00:00:00+00:00")


@pytest.mark.parametrize("value", [
    "2026-06-12T10:00:00",          # an instant needs its time zone
    "2026-06-12",                   # and its time
    "2026-06-12 10:00:00Z",         # a space is not a T
    "20260612T100000Z",             # no basic format
    "2026-02-30T10:00:00Z",         # no 30 February
    "2026-06-12T24:00:00Z",
    "2026-06-12T10:00:00+15:00",
    "0000-06-12T10:00:00Z",
    "yesterday", "", 20260612, None,
])
def test_what_is_not_an_instant_is_refused_naming_the_path(value):
    with pytest.raises(ServiceError) as refused:
        fhir_types.instant(value, "Bundle.entry[1].resource.date")
    assert refused.value.status == 400
    assert refused.value.where == "Bundle.entry[1].resource.date"


@pytest.mark.parametrize("value,expected", [
    ("2026", "2026-01-01T00:00:00+00:00"),
    ("2026-06", "2026-06-01T00:00:00+00:00"),
    ("2026-06-12", "2026-06-12T00:00:00+00:00"),
    ("2026-06-12T10:00:00+02:00", "2026-06-12T08:00:00+00:00"),
])
def test_a_date_time_at_any_precision_starts_where_it_says(value, expected):
    assert fhir_types.date_time(value, "creation") == _us(expected)


@pytest.mark.parametrize("value", ["2026-6", "2026-06-12T10:00", "2026-06-12T10:00:00", "26", "2026-13"])
def test_what_is_not_a_date_time_is_refused(value):
    with pytest.raises(ServiceError) as refused:
        fhir_types.date_time(value, "creation")
    assert refused.value.status == 400


@given(st.binary(min_size=1, max_size=300), st.sampled_from([" ", "\n", "\r\n", "\t", "  \n"]), st.integers(1, 80))
def test_base64_with_whitespace_anywhere_between_characters_decodes(data, space, width):
    text = base64.b64encode(data).decode()
    spaced = space.join(text[i:i + width] for i in range(0, len(text), width))
    assert fhir_types.base64_binary(space + spaced + space, "data") == data


@pytest.mark.parametrize("value", ["QUJD", "QUI=", "QQ=="])
def test_padded_base64_decodes(value):
    assert fhir_types.base64_binary(value, "data") == base64.b64decode(value)


@pytest.mark.parametrize("value", ["QUJ", "QUJD$", "QU-D", "QU_D", "====Q", 12, ["QUJD"]])
def test_what_is_not_base64_is_refused(value):
    with pytest.raises(ServiceError) as refused:
        fhir_types.base64_binary(value, "Binary.data")
    assert refused.value.status == 400 and refused.value.where == "Binary.data"


def test_oversize_base64_is_refused_before_decoding():
    with pytest.raises(ServiceError) as refused:
        fhir_types.base64_binary("QUJD" * 1000, "Binary.data", max_bytes=100)
    assert refused.value.status == 413


@pytest.mark.parametrize("value", [0, 1, 2_147_483_647])
def test_an_unsigned_int_is_a_json_integer(value):
    assert fhir_types.unsigned_int(value, "size") == value


@pytest.mark.parametrize("value", [-1, 2_147_483_648, 20.0, 20.5, "20", True, None])
def test_what_is_not_an_unsigned_int_is_refused(value):
    with pytest.raises(ServiceError) as refused:
        fhir_types.unsigned_int(value, "size")
    assert refused.value.status == 400


@pytest.mark.parametrize("value,base", [
    ("application/pdf", "application/pdf"),
    ("text/plain; charset=utf-8", "text/plain"),
    ("text/plain;charset=UTF-8", "text/plain"),
    ('Text/XML; charset="iso-8859-1"', "text/xml"),
    ("application/hl7-v3+xml", "application/hl7-v3+xml"),
])
def test_a_mime_type_with_parameters_gives_its_base_type(value, base):
    assert fhir_types.media_type(value, "contentType") == base


@pytest.mark.parametrize("value", ["pdf", "text/", "/plain", "text/plain; charset", "text/plain charset=utf-8",
                                   "text/plain; =x", "application/pdf ", " application/pdf"])
def test_what_is_not_a_mime_type_is_refused(value):
    with pytest.raises(ServiceError) as refused:
        fhir_types.media_type(value, "contentType")
    assert refused.value.status == 400
