"""``segur serve`` and ``segur token``: run the record service, and mint tokens to call it."""

from __future__ import annotations

from pathlib import Path

import click

from record_service.auth import DEFAULT_KEY_FILE, Actor, check_actor, issue_token, load_or_create_key
from record_service.codes import SECTORS
from record_service.settings import (DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_DOCUMENT_BYTES, DEFAULT_MAX_DOCUMENTS,
                                     DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_RECEIVING, DEFAULT_MAX_RECEIVING_BYTES,
                                     DEFAULT_MIN_BODY_RATE, Settings, default_sqlite_url)
from segur.errors import InputError

def _to_stderr(message: str) -> None:
    click.echo(message, err=True)


_KEY_HELP = (f"signing key file (default {DEFAULT_KEY_FILE}); made, mode 0600, when it does not exist (its directory "
             "must); refused when open to group or others, empty or too short. Never commit it")


@click.command()
@click.option("--db", "db_url", default=None, metavar="URL",
              help="sqlite:///PATH (default: records.sqlite3 in the data dir) or postgresql://USER@HOST:PORT/DB")
@click.option("--data-dir", default=".segur/record-service", show_default=True, type=click.Path(file_okay=False),
              help="where document files (and the default SQLite database) live")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="worker processes")
@click.option("--key", "key_file", default=None, type=click.Path(dir_okay=False), help=_KEY_HELP)
@click.option("--max-document-bytes", default=DEFAULT_MAX_DOCUMENT_BYTES, show_default=True,
              type=click.IntRange(1, 2**31), help="largest document accepted (413 above)")
@click.option("--max-documents", default=DEFAULT_MAX_DOCUMENTS, show_default=True, type=click.IntRange(1, 100_000),
              help="most documents in one deposit (413 above)")
@click.option("--max-in-flight", default=DEFAULT_MAX_IN_FLIGHT, show_default=True, type=click.IntRange(1, 100_000),
              help="requests worked on at once per worker; more are answered 503 + Retry-After")
@click.option("--max-receiving", default=DEFAULT_MAX_RECEIVING, show_default=True, type=click.IntRange(1, 100_000),
              help="request bodies received at once per worker (not counted in --max-in-flight until whole); "
                   "more are answered 503 + Retry-After")
@click.option("--max-receiving-bytes", default=DEFAULT_MAX_RECEIVING_BYTES, show_default=True,
              type=click.IntRange(1, 2**40), help="bytes the request bodies being received may hold together per "
              "worker (at least --max-document-bytes' body); the body that goes past is answered 503 + Retry-After")
@click.option("--body-timeout", "body_timeout_s", default=DEFAULT_BODY_TIMEOUT_S, show_default=True,
              type=click.FloatRange(0.1, 3600), metavar="SECONDS",
              help="a request body must arrive within this time plus 1 s per --min-body-rate bytes; "
                   "a late one is answered 408 and its connection closed")
@click.option("--min-body-rate", default=DEFAULT_MIN_BODY_RATE, show_default=True, type=click.IntRange(1, 2**31),
              metavar="BYTES_PER_S", help="the slowest average rate a request body may arrive at (see --body-timeout)")
def serve(db_url: str | None, data_dir: str, host: str, port: int, workers: int, key_file: str | None,
          max_document_bytes: int, max_documents: int, max_in_flight: int, max_receiving: int,
          max_receiving_bytes: int, body_timeout_s: float, min_body_rate: int) -> None:
    """Run the record service (FHIR / IHE MHD) until SIGTERM or SIGINT.

    \b
    Example:
      segur serve --data-dir /tmp/dmp --port 8080
      segur serve --db postgresql://segur@127.0.0.1:5432/segur --workers 2
    """
    from identity.structure import load_or_create_structure
    from record_service.server import serve as run
    from record_service.storage import DataDirectoryMismatch, lock_data_directory, prepare

    if db_url is None:
        db_url = default_sqlite_url(data_dir)
    if not db_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise InputError(f"--db {db_url!r}: use sqlite:///PATH or postgresql://…")
    key = Path(key_file or DEFAULT_KEY_FILE).resolve()
    load_or_create_key(key, create_parents=key_file is None, announce=_to_stderr)  # a named key's directory must exist
    load_or_create_structure(key, create_parents=False, announce=_to_stderr)  # the VIHF trust store, beside the key
    settings = Settings(db_url=db_url, data_dir=str(Path(data_dir).resolve()), key_file=str(key),
                        max_document_bytes=max_document_bytes, max_documents=max_documents, max_in_flight=max_in_flight,
                        max_receiving=max_receiving, max_receiving_bytes=max_receiving_bytes,
                        body_timeout_s=body_timeout_s, min_body_rate=min_body_rate)
    try:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        lock_data_directory(data_dir)  # held until this process and its workers exit
        check = prepare(settings)
    except DataDirectoryMismatch as error:
        raise InputError(f"--db {db_url!r} with --data-dir {data_dir!r}: {error}") from None
    except Exception as error:  # an unreachable database or an unwritable directory: say which
        raise InputError(f"cannot open storage {db_url!r}: {error}") from None
    if check.documents_without_file:
        click.echo(f"warning: {check.documents_without_file} of {check.documents_checked} documents checked at start have "
                   f"no file (or a file of another size) under {settings.blob_dir}: their retrieves will fail", err=True)
    if check.documents_migrated:
        click.echo(f"brought {check.documents_migrated} documents written by an older version up to date "
                   "(replacement chains, search values, submission sets)")
    if check.temporary_files_removed or check.orphan_files_removed:
        click.echo(f"removed {check.temporary_files_removed} unfinished and {check.orphan_files_removed} unreferenced "
                   f"document files (writes of deposits that were never acknowledged; unreferenced ones among "
                   f"{check.files_swept} files drawn at random)")
    run(settings, host, port, workers, announce=lambda line: click.echo(line, nl=True))


@click.command()
@click.option("--patient", metavar="INS", help="a patient's INS (15 characters)")
@click.option("--professional", metavar="RPPS", help="a professional's RPPS (11 digits)")
@click.option("--sector", type=click.Choice(SECTORS), help="the professional's sector")
@click.option("--facility", metavar="FINESS", help="the professional's facility (9-digit FINESS)")
@click.option("--expires-in", default=3600, show_default=True, type=click.IntRange(1, 10 * 365 * 86400),
              metavar="SECONDS")
@click.option("--key", "key_file", default=None, type=click.Path(dir_okay=False), help=_KEY_HELP)
def token(patient: str | None, professional: str | None, sector: str | None, facility: str | None,
          expires_in: int, key_file: str | None) -> None:
    """Print one signed bearer token for a patient or a professional.

    \b
    Example:
      segur token --professional 10003456786 --sector hospital --facility 750712184
      segur token --patient 295109912611193 --expires-in 600
    """
    if (patient is None) == (professional is None):
        raise InputError("give exactly one of --patient INS or --professional RPPS")
    if professional is not None and sector is None:
        raise InputError("--professional needs --sector")
    if patient is not None and (sector or facility):
        raise InputError("--sector and --facility are for professionals only")
    actor = Actor(rpps=professional, sector=sector, finess=facility, ins=patient)
    problem = check_actor(actor)
    if problem:
        raise InputError(problem)
    key = load_or_create_key(key_file or DEFAULT_KEY_FILE, create_parents=key_file is None, announce=_to_stderr)
    click.echo(issue_token(key, actor, expires_in))
