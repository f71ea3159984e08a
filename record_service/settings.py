"""The service's settings: one immutable object, passed to every worker process through the environment.

Granian starts workers as separate processes that import the app factory by name, so the settings
travel as one JSON environment variable rather than as module globals.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

_ENVIRONMENT_VARIABLE = "SEGUR_RECORD_SERVICE_SETTINGS"

DEFAULT_MAX_DOCUMENT_BYTES = 20 * 1024 * 1024  # the DMP's documented ceiling for one document
DEFAULT_MAX_DOCUMENTS = 500  # one submission set; a DMP deposit usually carries 1 to 3 documents
DEFAULT_MAX_IN_FLIGHT = 256
DEFAULT_MAX_RECEIVING = 1024  # bodies being received at once, per worker (they hold no in-flight slot)
DEFAULT_MAX_RECEIVING_BYTES = 512 * 1024 * 1024  # bytes those bodies may hold together, per worker
DEFAULT_BODY_TIMEOUT_S = 10.0  # a body has this long, plus 1 s per DEFAULT_MIN_BODY_RATE bytes received
DEFAULT_MIN_BODY_RATE = 64 * 1024  # bytes/s: a 28 MB deposit may take 7 min, a stalled one 10 s


@dataclass(frozen=True)
class Settings:
    """What one service instance needs to know."""

    db_url: str
    data_dir: str
    key_file: str
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    max_documents: int = DEFAULT_MAX_DOCUMENTS  # DocumentReferences in one deposit (413 above)
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_receiving: int = DEFAULT_MAX_RECEIVING
    max_receiving_bytes: int = DEFAULT_MAX_RECEIVING_BYTES
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    min_body_rate: int = DEFAULT_MIN_BODY_RATE
    max_batch: int = 256  # operations committed together by the group committer
    blob_threads: int = 16  # parallel file writes + fsyncs
    blob_read_threads: int = 16  # parallel reads of documents not in the page cache (the disk's queue, per worker)

    @property
    def blob_dir(self) -> Path:
        return Path(self.data_dir) / "blobs"

    @property
    def max_body_bytes(self) -> int:
        """The largest request body read: base64 inflates by 4/3, plus room for the metadata."""
        return self.max_document_bytes * 4 // 3 + 1024 * 1024

    def to_environment(self) -> None:
        os.environ[_ENVIRONMENT_VARIABLE] = json.dumps(asdict(self))

    @classmethod
    def from_environment(cls) -> "Settings":
        raw = os.environ.get(_ENVIRONMENT_VARIABLE)
        if not raw:
            raise RuntimeError(f"{_ENVIRONMENT_VARIABLE} is not set: start the service with `segur serve`")
        return cls(**json.loads(raw))


def default_sqlite_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'records.sqlite3'}"
