"""A database written by an older version of the service, brought up to date once, before any worker starts.

Two things older versions did not keep, which the DMP's rules and the search now need:

- **replacement chains**: a patient's mask or delete holds for every version of a document (see
  :mod:`record_service.rules`). Older documents get their chain from the ``relatesTo`` of their stored
  DocumentReference; a chain where the patient had masked (or deleted) one version is masked (or deleted)
  whole, as the rule says it is now;
- **search values** (:mod:`record_service.search_index`): written for every older document, so that
  ``category``, ``period``, ``:missing``... treat them as they treat new ones;
- **submission sets** (XDS FindSubmissionSets, HasMember): the documents of one older deposit (one
  patient, one depositor, one registration time) become the members of one submission set, whose
  submissionTime is that registration time and whose uniqueId the registry makes (``2.25.`` + its
  entryUUID, itself derived from what identifies the deposit, so a restarted migration makes the same).

Older documents are those whose ``chain_id`` (for the first two) or ``submission_set_id`` (for the
third) is still NULL (each column is added to an older table empty; a deposit always sets both).
Everything happens in one transaction: a start that is stopped half-way leaves the database as it
was, and the next start does it again.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

import orjson

from record_service.committer import WriteTransaction
from record_service.registry import generated_unique_id, set_chain_masked
from record_service.search_index import index_search_values

_PAGE = 1000  # documents read at a time (their JSON is kept only while the page is indexed)


def migrate(tx: WriteTransaction) -> int:
    """Give older documents their chains, search values and submission sets; how many documents were brought
    up to date."""
    parents: dict[str, str] = {}
    count = 0
    after = ""
    tx.begin()
    try:
        grouped, already_counted = _give_submission_sets(tx)
        while True:
            page = tx.execute("SELECT id, resource FROM documents WHERE chain_id IS NULL AND id > ?"
                              " ORDER BY id LIMIT ?", (after, _PAGE))
            if not page:
                break
            for doc_id, resource in page:
                parsed = orjson.loads(resource)
                parent = _replaced_id(parsed)
                if parent:
                    parents[doc_id] = parent
                index_search_values(tx, doc_id, parsed, parent)
            count += len(page)
            after = page[-1][0]
        if count:
            _join_chains(tx, parents)
        tx.commit()
    except BaseException:
        tx.rollback()
        raise
    return count + grouped - already_counted


def _give_submission_sets(tx: WriteTransaction) -> tuple[int, int]:
    """Each older deposit's documents made the members of one submission set of their own; (how many
    documents, how many of them also lack their chain)."""
    count = lacking_chain = 0
    after = ""
    while True:
        page = tx.execute("SELECT id, patient_ins, depositor_rpps, depositor_finess, depositor_ins, created_us,"
                          " chain_id FROM documents WHERE submission_set_id IS NULL AND id > ? ORDER BY id LIMIT ?",
                          (after, _PAGE))
        if not page:
            return count, lacking_chain
        sets: dict[str, tuple] = {}
        members = []
        for doc_id, patient_ins, rpps, finess, ins, created_us, chain_id in page:
            set_id = uuid.uuid5(uuid.NAMESPACE_URL, f"segur-loadsim:submission-set:{patient_ins}:{rpps}:{finess}:"
                                f"{ins}:{created_us}").hex
            sets[set_id] = (set_id, generated_unique_id(set_id), patient_ins, created_us, created_us)
            members.append((set_id, doc_id))
            lacking_chain += chain_id is None
        tx.executemany("INSERT INTO submission_sets (id, unique_id, patient_ins, submission_us, created_us)"
                       " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", list(sets.values()))
        tx.executemany("UPDATE documents SET submission_set_id = ? WHERE id = ?", members)
        count += len(page)
        after = page[-1][0]


def _replaced_id(resource: dict) -> str | None:
    """The id a stored DocumentReference replaces (``relatesTo`` with code ``replaces``), if any."""
    for relation in resource.get("relatesTo") or []:
        if isinstance(relation, dict) and relation.get("code") == "replaces":
            reference = (relation.get("target") or {}).get("reference")
            if isinstance(reference, str) and "/" in reference:
                return reference.rstrip("/").rpartition("/")[2]
    return None


def _join_chains(tx: WriteTransaction, parents: dict[str, str]) -> None:
    """Every older document's chain is its first version's id; a chain's mask and delete made whole."""
    def first(doc_id: str) -> str:
        seen = {doc_id}
        while doc_id in parents and parents[doc_id] not in seen:
            doc_id = parents[doc_id]
            seen.add(doc_id)
        return doc_id

    chains: dict[str, list[str]] = defaultdict(list)
    for child in parents:
        chains[first(child)].append(child)
    tx.executemany("UPDATE documents SET chain_id = ? WHERE id = ?",
                   [(root, member) for root, members in chains.items() for member in members])
    tx.execute("UPDATE documents SET chain_id = id WHERE chain_id IS NULL")
    for root, members in chains.items():
        _settle(tx, [root, *members], root)


def _settle(tx: WriteTransaction, members: list[str], chain_id: str) -> None:
    """A chain one of whose versions was deleted is deleted; else one masked, masked (labels rewritten)."""
    marks = ",".join("?" * len(members))
    states = tx.execute(f"SELECT status, masked FROM documents WHERE id IN ({marks})", members)
    if any(status == "deleted" for status, _ in states):
        tx.execute("UPDATE documents SET status = 'deleted', version = version + 1"
                   " WHERE chain_id = ? AND status <> 'deleted'", (chain_id,))
    elif any(masked for _, masked in states):
        set_chain_masked(tx, chain_id, True)
