"""The bulk-load framing shared by ``segur seed`` (which writes it) and the record service (which reads it).

``POST /$bulk-load`` (:mod:`record_service.bulk_load`, where the endpoint's contract is) carries
``Content-Type: application/x-segur-bulk``: the magic line ``SEGURBULK1\\n``, then per document

    4 bytes, big-endian: the length H of its header
    H bytes: a JSON object {"size": N, "sha256": "<hex>", "depositor": {...}, "resource": {DocumentReference}}
    N bytes: the document's bytes

A binary framing, chosen by measurement over base64 JSON (a third more bytes, and an encode and a decode of every
document). Both sides import it from here, so the load driver needs none of the service's code.
"""

from __future__ import annotations

import struct

import orjson

MEDIA_TYPE = "application/x-segur-bulk"
MAGIC = b"SEGURBULK1\n"
LENGTH = struct.Struct(">I")   # a header's length, bytes
MAX_HEADER = 256 * 1024        # bytes of a header's JSON: far more than any real DocumentReference


def encode_document(resource: dict, depositor: dict, data: bytes, sha256: str) -> list[bytes]:
    """One document's frame as parts (the length, the JSON header, the bytes), to be joined after :data:`MAGIC`
    with the others'. ``sha256``: the hex SHA-256 of ``data``, which the service checks."""
    header = orjson.dumps({"size": len(data), "sha256": sha256, "depositor": depositor, "resource": resource})
    return [LENGTH.pack(len(header)), header, data]
