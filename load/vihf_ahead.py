"""VIHF assertions signed ahead of the replay, one per professional and patient of the schedule.

A VIHF names the professional, their structure and the patient: a consultation of another patient
needs another assertion, and signing one (RSA-2048, exclusive c14n, signxml) costs the driver a few
milliseconds of CPU. Signed during a replay, at a thousand consultations a second, signing alone would
saturate the driver: the load would be limited by the driver, not the service. So `segur seed` signs
them all once, after seeding, into ``vihf.parquet`` beside the schedule (columns ``actor_id``,
``sector``, ``facility_id``, ``patient_ins``, ``assertion`` (the signed XML, bytes), ``expires_at``
(seconds since the epoch)), and every replay of the window (every step of a plan, every worker) loads
them; an assertion missing or about to expire is signed on demand, as before. Professionals' software
reuses an assertion within a session the same way (docs/xds-sources.md §1).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.hazmat.primitives import serialization
from tqdm import tqdm

from identity.actors import Actor
from identity.structure import load_or_create_structure
from identity.vihf import issue_assertion

FILE_NAME = "vihf.parquet"
LIFETIME_S = 12 * 3600          # long enough for a plan's steps; a replay re-signs what expires in its run
MARGIN_S = 3600                 # an assertion expiring within the hour is not taken from the file
_OPERATIONS = ("search", "retrieve", "deposit")   # the professionals' interactions that carry a VIHF


def _who(row: dict) -> tuple[str, str, str | None, str]:
    return row["actor_id"], row["sector"], row.get("facility_id"), row["patient_ins"]


def structure_fingerprint(key_file: str | Path) -> str:
    """SHA-256 (hex) of the structure certificate beside ``key_file``: whose signatures a file holds."""
    certificate = load_or_create_structure(key_file).certificate
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def sign_schedule(result_dir: str | Path, key_file: str | Path, log: Callable[[str], None] = print,
                  progress: bool | None = None, now: float | None = None) -> Path:
    """Sign one VIHF per (professional, structure, patient) of the schedule's professional interactions into
    ``result_dir/vihf.parquet`` (written whole, then renamed); returns its path. Assertions already in the file,
    by the same structure and valid for more than ``MARGIN_S``, are kept, not signed again."""
    folder = Path(result_dir)
    schedule = pq.read_table(folder / "schedule.parquet",
                             columns=["operation", "actor_kind", "actor_id", "sector", "facility_id", "patient_ins"])
    wanted = {_who(row) for row in schedule.to_pylist()
              if row["actor_kind"] == "professional" and row["operation"] in _OPERATIONS}
    now = time.time() if now is None else now
    path = folder / FILE_NAME
    fingerprint = structure_fingerprint(key_file)
    kept = {who: (assertion, expires) for who, (assertion, expires) in load(path, fingerprint, now).items()
            if who in wanted}
    structure = load_or_create_structure(key_file)
    show = sys.stderr.isatty() if progress is None else progress
    missing = sorted(wanted - kept.keys(), key=lambda who: tuple(part or "" for part in who))
    for who in tqdm(missing, unit="VIHF", desc="signing", disable=not show):
        actor = Actor(rpps=who[0], sector=who[1], finess=who[2])
        kept[who] = (issue_assertion(structure, actor, who[3], expires_in=LIFETIME_S, now=now), now + LIFETIME_S)
    whos = list(kept)
    table = pa.table({"actor_id": [w[0] for w in whos], "sector": [w[1] for w in whos],
                      "facility_id": [w[2] for w in whos], "patient_ins": [w[3] for w in whos],
                      "assertion": pa.array([kept[w][0] for w in whos], pa.binary()),
                      "expires_at": pa.array([kept[w][1] for w in whos], pa.float64())},
                     metadata={"structure_sha256": fingerprint})
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial)
    os.replace(partial, path)
    log(f"signed {len(missing):,} VIHF assertions ahead ({len(whos) - len(missing):,} kept) into {path}")
    return path


def load(path: str | Path, fingerprint: str | None, now: float | None = None) -> dict[tuple, tuple[bytes, float]]:
    """The assertions of a file signed by the structure ``fingerprint`` names (any, when None), valid for more than
    ``MARGIN_S`` from ``now``: (actor_id, sector, facility_id, patient_ins) -> (assertion, expires_at). A missing
    or unreadable file, or one signed by another structure, gives none."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        table = pq.read_table(path)
    except Exception:  # noqa: BLE001 - a damaged cache is only a cache: the assertions are signed again
        return {}
    signer = (table.schema.metadata or {}).get(b"structure_sha256", b"").decode()
    if fingerprint is not None and signer != fingerprint:
        return {}
    now = time.time() if now is None else now
    found = {}
    for row in table.to_pylist():
        if row["expires_at"] - now > MARGIN_S:
            found[_who(row)] = (row["assertion"], row["expires_at"])
    return found
