"""The tables and indexes, the same on SQLite and PostgreSQL but for two type names.

Hot queries and the indexes that serve them:
- a patient's documents by status, newest first (every find): ``documents_by_patient_status``;
- the same narrowed by type (``type=`` searches): ``documents_by_patient_type``;
- a patient's submission sets (FindSubmissionSets), their documents (GetAssociations): from the patient's
  documents (``documents_by_patient_status``), then each set by its primary key;
- idempotency by masterIdentifier: the UNIQUE constraint's index;
- the files documents name (the start-up sweep): ``documents_by_sha256``;
- a patient's access history, newest first: ``audit_by_patient_time``;
- a document's search values by parameter (search filters): the keys of ``document_tokens``, ``document_dates``.
The document's FHIR JSON is kept ready to send (``resource``), rewritten on each metadata change, so
a search splices stored bytes instead of rebuilding resources.
"""

from __future__ import annotations



# columns added after the first schema: (name, SQL type), added to older databases at start
_DOCUMENT_COLUMNS_ADDED = (("chain_id", "TEXT"), ("submission_set_id", "TEXT"))


def added_columns(dialect: str, table: str, columns: tuple[tuple[str, str], ...]) -> list[str]:
    """``ALTER TABLE ... ADD COLUMN`` for columns an older database lacks.

    PostgreSQL says ``IF NOT EXISTS``; SQLite cannot, so its statements carry the marker comment
    :data:`IF_MISSING` and the SQLite back end ignores their "duplicate column" error.
    """
    if dialect == "postgresql":
        return [f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in columns]
    return [f"ALTER TABLE {table} ADD COLUMN {name} {kind} {IF_MISSING}" for name, kind in columns]


IF_MISSING = "/* if missing */"


def statements(dialect: str) -> list[str]:
    """CREATE statements for ``dialect`` ('sqlite' or 'postgresql'), safe to run again: every table."""
    return record_statements(dialect) + audit_statements(dialect)


def record_statements(dialect: str) -> list[str]:
    """The record's tables: documents, submission sets, blocks, opt-outs."""
    blob = "BLOB" if dialect == "sqlite" else "BYTEA"
    return [
        f"""CREATE TABLE IF NOT EXISTS documents (
            id TEXT PRIMARY KEY,
            master_id TEXT NOT NULL UNIQUE,
            patient_ins TEXT NOT NULL,
            status TEXT NOT NULL,
            type_code TEXT NOT NULL,
            date_us BIGINT NOT NULL,
            authors TEXT NOT NULL,
            depositor_rpps TEXT,
            depositor_finess TEXT,
            depositor_ins TEXT,
            content_type TEXT NOT NULL,
            size BIGINT NOT NULL,
            sha256 TEXT NOT NULL,
            masked INTEGER NOT NULL,
            version INTEGER NOT NULL,
            created_us BIGINT NOT NULL,
            resource {blob} NOT NULL,
            chain_id TEXT,
            submission_set_id TEXT)""",
        *added_columns(dialect, "documents", _DOCUMENT_COLUMNS_ADDED),
        # the versions of one document (v1 -> v2 -> v3 share the first one's id): a patient's mask or delete
        # applies to the whole chain; documents from before chains existed get theirs from ``migrations``
        "CREATE INDEX IF NOT EXISTS documents_by_chain ON documents (chain_id)",
        """CREATE INDEX IF NOT EXISTS documents_by_patient_status
            ON documents (patient_ins, status, date_us DESC, id DESC)""",
        """CREATE INDEX IF NOT EXISTS documents_by_patient_type
            ON documents (patient_ins, type_code, date_us DESC, id DESC)""",
        # which documents name a file: the start-up sweep of files no deposit committed asks it per file
        "CREATE INDEX IF NOT EXISTS documents_by_sha256 ON documents (sha256)",
        # the submission sets (XDS): each document is a member of the one that registered it
        # (``documents.submission_set_id``); documents from before submission sets get theirs from ``migrations``.
        # A patient's submission sets are found from their documents (``documents_by_patient_status``), so that
        # a deposit writes two more B-trees, not four (on SQLite the table is its primary key's)
        f"""CREATE TABLE IF NOT EXISTS submission_sets (
            id TEXT PRIMARY KEY,
            unique_id TEXT NOT NULL UNIQUE,
            patient_ins TEXT NOT NULL,
            source_id TEXT,
            submission_us BIGINT NOT NULL,
            content_system TEXT,
            content_code TEXT,
            created_us BIGINT NOT NULL){" WITHOUT ROWID" if dialect == "sqlite" else ""}""",
        # the documents the migration has to give a submission set: none once it has run, so no cost at deposit
        """CREATE INDEX IF NOT EXISTS documents_without_submission_set ON documents (id)
            WHERE submission_set_id IS NULL""",
        "DROP INDEX IF EXISTS documents_by_submission_set",  # a first version's, superseded by the two above
        "DROP INDEX IF EXISTS submission_sets_by_patient",
        """CREATE TABLE IF NOT EXISTS blocks (
            patient_ins TEXT NOT NULL,
            rpps TEXT NOT NULL,
            at_us BIGINT NOT NULL,
            PRIMARY KEY (patient_ins, rpps))""",
        # ties the database to its data directory (see storage.check_data_directory)
        "CREATE TABLE IF NOT EXISTS store_identity (id TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS opt_outs (
            patient_ins TEXT PRIMARY KEY,
            at_us BIGINT NOT NULL)""",
        *search_statements(),
    ]


def search_statements() -> list[str]:
    """The search values of each document (see ``search_index``), written once at deposit.

    A find starts from the patient's documents (``documents_by_patient_status``) and probes these by
    document id, so each table's key leads with it; no index leads with the code: every ITI-67 search
    names its patient, so none would be used.
    """
    return [
        """CREATE TABLE IF NOT EXISTS document_tokens (
            document_id TEXT NOT NULL,
            parameter TEXT NOT NULL,
            system TEXT NOT NULL,
            code TEXT NOT NULL,
            PRIMARY KEY (document_id, parameter, code, system))""",
        """CREATE TABLE IF NOT EXISTS document_dates (
            document_id TEXT NOT NULL,
            parameter TEXT NOT NULL,
            low_us BIGINT NOT NULL,
            high_us BIGINT NOT NULL,
            PRIMARY KEY (document_id, parameter, low_us, high_us))""",
    ]


def audit_statements(dialect: str) -> list[str]:
    """The access history's table (on SQLite, a database file of its own: see ``sqlite_store``)."""
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    return [
        f"""CREATE TABLE IF NOT EXISTS audit_events (
            id {serial},
            patient_ins TEXT NOT NULL,
            at_us BIGINT NOT NULL,
            actor_rpps TEXT NOT NULL,
            actor_sector TEXT,
            actor_finess TEXT,
            action TEXT NOT NULL,
            document_id TEXT,
            outcome TEXT NOT NULL,
            detail TEXT)""",
        # newest first by the time of the read: rows reach the table in indexing order, not reading order
        """CREATE INDEX IF NOT EXISTS audit_by_patient_time ON audit_events (patient_ins, at_us DESC, id DESC)""",
        "DROP INDEX IF EXISTS audit_by_patient",  # its predecessor, ordered by id
        OFFSETS_TABLE,
    ]


# how far each access-history journal has been indexed (see ``audit_journal``)
OFFSETS_TABLE = """CREATE TABLE IF NOT EXISTS audit_journal_offsets (
    journal TEXT PRIMARY KEY,
    indexed_bytes INTEGER NOT NULL)"""

AUDIT_INSERT = ("INSERT INTO audit_events (patient_ins, at_us, actor_rpps, actor_sector, actor_finess, action,"
                " document_id, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
