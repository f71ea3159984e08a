"""French health identifiers: INS (NIR form), RPPS and FINESS.

Validators take one string and say whether it is well formed. Generators are vectorised
(numpy in, numpy strings out; bytes on request, for writers that want no conversion) because the simulator mints millions of them per replay window,
and they are *deterministic*: patient number ``i`` of a pool always gets the same INS, so a
corpus and a schedule written separately agree on who is who.

- INS-NIR: 13 characters + 2-digit key, key = 97 - (number mod 97); in a Corsican department
  ``2A`` counts as 19 and ``2B`` as 18.
- RPPS: 11 digits, the last a Luhn check digit.
- FINESS: 9 digits, the last a Luhn check digit.
"""

from __future__ import annotations

import math

import numpy as np

INS_NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIR_TEST_SYSTEM = "urn:oid:1.2.250.1.213.1.4.10"
INS_SYSTEMS = frozenset({INS_NIR_SYSTEM, INS_NIR_TEST_SYSTEM})
INS_OIDS = frozenset(system.removeprefix("urn:oid:") for system in INS_SYSTEMS)  # as CX authorities (XDS, VIHF)
RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"  # IdNat_PS: "8" + RPPS
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
# a FINESS as the French FHIR profiles write it: either registry system with the 9 digits, or IdNat_Struct
FINESS_SYSTEMS = frozenset({FINESS_SYSTEM, "http://finess.sante.gouv.fr"})
IDNAT_STRUCT_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"  # "1" + FINESS for a facility ("3" + SIRET...)

_CORSICA = {"2A": "19", "2B": "18"}

# Departments as they appear in a NIR: 01-19, 2A, 2B, 21-95 (metropolitan France).
_DEPARTMENTS = [f"{d:02d}" for d in range(1, 20)] + ["2A", "2B"] + [f"{d:02d}" for d in range(21, 96)]
_DEPARTMENT_KEY_VALUE = np.array([int(_CORSICA.get(d, d)) for d in _DEPARTMENTS], dtype=np.int64)
_DEPARTMENT_CHARS = np.frombuffer("".join(_DEPARTMENTS).encode(), dtype=np.uint8).reshape(-1, 2)

# Mixed-radix layout of a synthetic NIR: sex, year, month, department, commune, order.
_NIR_RADICES = (2, 100, 12, len(_DEPARTMENTS), 990, 999)
_NIR_SPACE = int(np.prod(_NIR_RADICES, dtype=np.int64))
_MAX_POOL = 2**31  # keeps (number * multiplier) inside int64


def _coprime_multiplier(modulus: int) -> int:
    """A multiplier coprime with ``modulus``, so that ``i * m % modulus`` permutes ``0 .. modulus-1``."""
    candidate = 1_000_003 % modulus or 1
    while math.gcd(candidate, modulus) != 1:
        candidate += 1
    return candidate


# --- validators -------------------------------------------------------------------------


def ins_key(nir13: str) -> int:
    """The 2-digit key of a 13-character NIR (Corsica handled)."""
    number = int(nir13[:5] + _CORSICA.get(nir13[5:7].upper(), nir13[5:7]) + nir13[7:])
    return 97 - number % 97


def is_valid_ins(value: object) -> bool:
    """True for a well-formed INS-NIR: 15 characters, digits (2A/2B allowed in the department), right key."""
    if not isinstance(value, str) or len(value) != 15:
        return False
    body, key = value[:13], value[13:]
    department = body[5:7].upper()
    digits_ok = _is_ascii_digits(body[:5] + _CORSICA.get(department, department) + body[7:])
    if not (digits_ok and _is_ascii_digits(key) and body[0] in "12378"):
        return False
    return ins_key(body) == int(key)


def _luhn_sum(digits: str) -> int:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total


def _is_ascii_digits(value: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes "²" and "٣" (Arabic-Indic three), which would name
    another record under another key, or crash ``int``."""
    return value.isascii() and value.isdigit()


def is_valid_luhn(value: str) -> bool:
    return _is_ascii_digits(value) and _luhn_sum(value) % 10 == 0


def is_valid_rpps(value: object) -> bool:
    """True for 11 digits with a valid Luhn check digit."""
    return isinstance(value, str) and len(value) == 11 and is_valid_luhn(value)


def is_valid_finess(value: object) -> bool:
    """True for 9 digits with a valid Luhn check digit."""
    return isinstance(value, str) and len(value) == 9 and is_valid_luhn(value)


def luhn_complete(body: str) -> str:
    """``body`` followed by the Luhn check digit that makes the whole valid."""
    return body + str((10 - _luhn_sum(body + "0") % 10) % 10)


# --- vectorised generators ------------------------------------------------------------------


def _digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """Decimal digits of non-negative int64s as a (n, width) uint8 matrix, most significant first."""
    remaining = np.array(numbers, dtype=np.int64)
    digits = np.empty((remaining.size, width), dtype=np.uint8)
    for position in range(width - 1, -1, -1):
        # a scalar divisor takes numpy's fast integer-division path
        remaining, digits[:, position] = np.divmod(remaining, 10)
    return digits


def _as_strings(ascii_matrix: np.ndarray, as_bytes: bool) -> np.ndarray:
    """(n, width) ASCII codes to one fixed-width string per row: numpy bytes (S) or str (U)."""
    width = ascii_matrix.shape[1]
    packed = np.ascontiguousarray(ascii_matrix).view(f"S{width}").ravel()
    return packed if as_bytes else packed.astype(f"U{width}")


def ins_for_patients(patient_numbers: np.ndarray, pool_size: int, as_bytes: bool = False) -> np.ndarray:
    """The INS of patients ``0 .. pool_size-1``: distinct within the pool, stable for a given pool size.

    Patient numbers are scrambled (a multiplicative permutation modulo the pool size), then
    spread over the NIR space and decomposed as sex, year, month, department, commune, order.
    """
    patients = np.asarray(patient_numbers, dtype=np.int64)
    if not 0 < pool_size <= _MAX_POOL:
        raise ValueError(f"pool size must be in 1..{_MAX_POOL}, got {pool_size}")
    if patients.size and (patients.min() < 0 or patients.max() >= pool_size):
        raise ValueError("patient numbers must lie in 0 .. pool_size-1")
    scrambled = patients * _coprime_multiplier(pool_size) % pool_size
    spread = scrambled * (_NIR_SPACE // pool_size)

    fields = []
    for radix in reversed(_NIR_RADICES):
        fields.append(spread % radix)
        spread = spread // radix
    order, commune, department, month, year, sex = fields
    order, commune, month, sex = order + 1, commune + 1, month + 1, sex + 1

    key_number = (((sex * 100 + year) * 100 + month) * 100 + _DEPARTMENT_KEY_VALUE[department]) * 10**6
    key_number += commune * 1000 + order
    key = 97 - key_number % 97

    chars = np.empty((patients.size, 15), dtype=np.uint8)
    chars[:, 0:5] = _digits(sex * 10_000 + year * 100 + month, 5) + ord("0")
    chars[:, 5:7] = _DEPARTMENT_CHARS[department]
    chars[:, 7:13] = _digits(commune * 1000 + order, 6) + ord("0")
    chars[:, 13:15] = _digits(key, 2) + ord("0")
    return _as_strings(chars, as_bytes)


_LUHN_DOUBLED = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.uint8)  # 2d, minus 9 when above 9


def _luhn_numbers(bodies: np.ndarray, body_width: int, as_bytes: bool) -> np.ndarray:
    """Append a Luhn check digit to each body (given as int64) and return them as strings."""
    digits = _digits(bodies, body_width)
    # counted from the right of the *full* number the check digit is position 0: the body's last digit is doubled
    doubled = (np.arange(body_width)[::-1] % 2) == 0
    contribution = digits.copy()
    contribution[:, doubled] = _LUHN_DOUBLED[digits[:, doubled]]
    check = (10 - contribution.sum(axis=1, dtype=np.int32) % 10) % 10
    chars = np.empty((digits.shape[0], body_width + 1), dtype=np.uint8)
    chars[:, :body_width] = digits + ord("0")
    chars[:, body_width] = check + ord("0")
    return _as_strings(chars, as_bytes)


def rpps_for_professionals(professional_numbers: np.ndarray, as_bytes: bool = False) -> np.ndarray:
    """Well-formed, distinct RPPS numbers (``10`` + 8 digits + Luhn) for professional numbers < 10**8."""
    numbers = np.asarray(professional_numbers, dtype=np.int64)
    if numbers.size and (numbers.min() < 0 or numbers.max() >= 10**8):
        raise ValueError("professional numbers must lie in 0 .. 10**8-1")
    # 48_271 is odd and not a multiple of 5, hence coprime with 10**8: a permutation of the range
    bodies = 10 * 10**8 + numbers * 48_271 % 10**8
    return _luhn_numbers(bodies, 10, as_bytes)


def finess_for_facilities(facility_numbers: np.ndarray, as_bytes: bool = False) -> np.ndarray:
    """Well-formed, distinct FINESS numbers (department + 6 digits + Luhn) for facility numbers < 95 * 10**6."""
    numbers = np.asarray(facility_numbers, dtype=np.int64)
    if numbers.size and (numbers.min() < 0 or numbers.max() >= 95 * 10**6):
        raise ValueError("facility numbers must lie in 0 .. 95*10**6-1")
    department = numbers % 95 + 1
    serial = numbers // 95
    return _luhn_numbers(department * 10**6 + serial, 8, as_bytes)
