"""ITI-41 metadata into the deposit the FHIR front would have made, and every refusal with its XDS code."""

import hashlib

import pytest

from record_service.xds import errors, metadata, soap
from record_service.xds.errors import XdsError
from record_service.xds.terms import ITI41
from tests.record_service.xds import messages

INS, RPPS, FINESS = "100082A19900193", "10001448132", "050000009"


def _parse(body):
    message = soap.parse("application/soap+xml", messages.envelope(ITI41, body, None))
    return metadata.parse_submission(message, 10_000_000, 500)


@pytest.fixture(autouse=True)
def _valid_ids():
    from segur.identifiers import is_valid_finess, is_valid_ins, is_valid_rpps
    assert is_valid_ins(INS) and is_valid_rpps(RPPS) and is_valid_finess(FINESS), "fix the test's identifiers"


def test_a_submission_becomes_the_documentreference_mhd_maps_it_to():
    data = b"%PDF-1.4 " + bytes(range(256)) * 10
    deposit, submission = _parse(messages.provide_and_register(INS, RPPS, FINESS, [("1.2.250.1.999.7.1", data)]))
    assert deposit.patient_ins == INS and submission.patient_ins == INS and len(deposit.documents) == 1
    document = deposit.documents[0]
    assert document.master_id == "urn:oid:1.2.250.1.999.7.1" and document.data == data
    assert document.type_code == "11502-2" and set(document.authors) == {RPPS, FINESS} and not document.masked
    resource = document.resource
    assert resource["type"]["coding"][0]["system"] == "http://loinc.org"
    assert resource["category"][0]["coding"][0] == {"system": "urn:oid:1.2.250.1.213.1.1.4.1", "code": "10"}
    assert resource["content"][0]["attachment"]["creation"] == "2026-11-30T10:15:00Z"
    assert resource["context"]["period"] == {"start": "2026-11-30"}
    assert resource["subject"]["identifier"]["value"] == INS


def test_a_document_deposited_masked_is_masked():
    deposit, _ = _parse(messages.provide_and_register(INS, RPPS, FINESS, [("1.2.3.4", b"x" * 10)],
                                                      confidentiality=("MASQUE_PS", "1.2.250.1.213.1.1.4.13")))
    assert deposit.documents[0].masked


def test_rplc_names_the_document_it_replaces():
    target = "urn:uuid:01234567-89ab-cdef-0123-456789abcdef"
    deposit, _ = _parse(messages.provide_and_register(INS, RPPS, FINESS, [("1.2.3.5", b"v2")], replaces={0: target}))
    assert deposit.documents[0].replaces == "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("changes, code", [
    ({"hash_of": {0: hashlib.sha1(b"other").hexdigest()}}, errors.REPOSITORY_METADATA),
    ({"size_of": {0: 99}}, errors.REPOSITORY_METADATA),
    ({"type_code": "99999-9"}, errors.REGISTRY_METADATA),
    ({"patient_of": {0: "101033839700110"}}, errors.PATIENT_ID_DOES_NOT_MATCH),
    ({"drop_document": 0}, errors.MISSING_DOCUMENT),
    ({"extra_document": True}, errors.MISSING_DOCUMENT_METADATA),
    ({"replaces": {0: "not-a-uuid"}}, errors.REGISTRY_METADATA),
])
def test_each_metadata_fault_has_its_xds_code(changes, code):
    with pytest.raises(XdsError) as caught:
        _parse(messages.provide_and_register(INS, RPPS, FINESS, [("1.2.3.6", b"abc")], **changes))
    assert caught.value.code == code


def test_the_same_unique_id_twice_in_one_message_is_refused():
    with pytest.raises(XdsError) as caught:
        _parse(messages.provide_and_register(INS, RPPS, FINESS, [("1.2.3.7", b"a"), ("1.2.3.7", b"b")]))
    assert caught.value.code == errors.DUPLICATE_IN_MESSAGE


def test_an_entry_back_out_has_the_ids_a_client_needs():
    from lxml import etree

    from record_service.bundles import stored_resource
    from record_service.xds import terms
    from record_service.xds.terms import q
    import orjson

    deposit, _ = _parse(messages.provide_and_register(INS, RPPS, FINESS, [("1.2.3.8", b"hello")]))
    document = deposit.documents[0]
    entry = metadata.document_entry(document.id, orjson.loads(stored_resource(document, 0)), INS)
    assert entry.get("status") == terms.APPROVED and entry.get("id") == metadata.entry_uuid(document.id)
    slots = {s.get("name"): s.findtext(f".//{q('rim', 'Value')}") for s in entry.findall(q("rim", "Slot"))}
    assert slots["repositoryUniqueId"] == terms.REPOSITORY_UNIQUE_ID and slots["hash"] == hashlib.sha1(b"hello").hexdigest()
    assert slots["size"] == "5" and slots["creationTime"] == "20261130101500"
    ids = {e.get("identificationScheme"): e.get("value") for e in entry.findall(q("rim", "ExternalIdentifier"))}
    assert ids[terms.DE_UNIQUE_ID] == "1.2.3.8" and ids[terms.DE_PATIENT_ID] == messages.cx(INS)
    assert etree.tostring(entry)  # serialisable
