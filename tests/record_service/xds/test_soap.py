"""SOAP 1.2 in and out: plain and MTOM/XOP requests, what is refused as a Sender fault, MTOM answers."""

import base64

import pytest
from lxml import etree

from record_service.xds import soap
from record_service.xds.terms import ITI41, NS, q

ENVELOPE = (f'<s:Envelope xmlns:s="{NS["soap"]}" xmlns:a="{NS["wsa"]}" xmlns:x="{NS["xdsb"]}">'
            f'<s:Header><a:Action s:mustUnderstand="true">{ITI41}</a:Action><a:MessageID>urn:uuid:1</a:MessageID>'
            '</s:Header><s:Body><x:ProvideAndRegisterDocumentSetRequest><x:Document id="d1">{document}</x:Document>'
            '</x:ProvideAndRegisterDocumentSetRequest></s:Body></s:Envelope>')


def _mtom(envelope: str, parts: dict[str, bytes], start: str = "root@t") -> tuple[str, bytes]:
    chunks = [b"--B\r\nContent-Type: application/xop+xml; type=\"application/soap+xml\"\r\nContent-ID: <root@t>\r\n\r\n",
              envelope.encode()]
    for cid, data in parts.items():
        chunks += [f"\r\n--B\r\nContent-Type: application/octet-stream\r\nContent-ID: <{cid}>\r\n\r\n".encode(), data]
    chunks.append(b"\r\n--B--\r\n")
    return f'multipart/related; boundary="B"; type="application/xop+xml"; start="<{start}>"', b"".join(chunks)


def test_a_plain_request_gives_its_action_body_and_inline_bytes():
    data = b"\x00\r\n%PDF binary \xff" * 10
    message = soap.parse("application/soap+xml; charset=UTF-8",
                         ENVELOPE.format(document=base64.b64encode(data).decode()).encode())
    assert message.action == ITI41 and message.message_id == "urn:uuid:1" and not message.mtom
    document = message.body.find(q("xdsb", "Document"))
    assert message.binary(document, "doc") == data


def test_an_mtom_request_gives_the_exact_bytes_of_its_parts():
    data = b"\r\nx--B not a boundary\r\n\x00\xff\r" * 50  # CRLFs, a lone CR and "--B" inside the bytes
    include = '<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:doc%401"/>'
    content_type, body = _mtom(ENVELOPE.format(document=include), {"doc@1": data})
    message = soap.parse(content_type, body)
    assert message.mtom and message.binary(message.body.find(q("xdsb", "Document")), "doc") == data


@pytest.mark.parametrize("content_type, body, words", [
    ("text/xml", b"<x/>", "SOAP 1.1"),
    ("application/json", b"{}", "expected application/soap+xml"),
    ("application/soap+xml", b"<s:Envelope", "not well-formed"),
    ("application/soap+xml", b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "DOCTYPE"),
    ("application/soap+xml", f'<s:Envelope xmlns:s="{NS["soap"]}"><s:Body><x/></s:Body></s:Envelope>'.encode(),
     "wsa:Action"),
    ("application/soap+xml", b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>', "SOAP 1.2"),
    ("multipart/related", b"--B\r\n\r\nx\r\n--B--", "boundary"),
])
def test_what_is_not_soap_1_2_is_a_sender_fault(content_type, body, words):
    with pytest.raises(soap.SoapFault) as caught:
        soap.parse(content_type, body)
    assert words in caught.value.reason and caught.value.status == 400


def test_an_include_naming_no_part_and_bad_base64_are_refused():
    include = '<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:missing@1"/>'
    content_type, body = _mtom(ENVELOPE.format(document=include), {})
    message = soap.parse(content_type, body)
    with pytest.raises(soap.SoapFault, match="does not have"):
        message.binary(message.body.find(q("xdsb", "Document")), "doc")
    message = soap.parse("application/soap+xml", ENVELOPE.format(document="!!not base64!!").encode())
    with pytest.raises(soap.SoapFault, match="base64"):
        message.binary(message.body.find(q("xdsb", "Document")), "doc")


def test_an_mtom_part_that_no_include_names_or_a_content_id_twice_is_refused():
    include = '<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:doc@1"/>'
    content_type, body = _mtom(ENVELOPE.format(document=include), {"doc@1": b"x", "stray@1": b"y"})
    with pytest.raises(soap.SoapFault, match="named by no xop:Include"):
        soap.parse(content_type, body)
    content_type, body = _mtom(ENVELOPE.format(document=include), {"doc@1": b"x"})
    twice = body.replace(b"\r\n--B--", b"\r\n--B\r\nContent-ID: <doc@1>\r\n\r\nz\r\n--B--")
    with pytest.raises(soap.SoapFault, match="two MIME parts"):
        soap.parse(content_type, twice)
    with pytest.raises(soap.SoapFault, match="closing boundary"):
        soap.parse(content_type, body.replace(b"\r\n--B--\r\n", b"\r\n"))


def test_a_doctype_is_refused_before_it_is_read():
    laughs = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    for prolog in ('<?xml version="1.0"?>\n<!-- c -->\n', "\ufeff", ""):
        body = (prolog + f'<!DOCTYPE x [<!ENTITY l0 "lol">{laughs}]><x>&l9;</x>').encode()
        with pytest.raises(soap.SoapFault, match="DOCTYPE"):
            soap.parse("application/soap+xml", body)


def test_an_unknown_must_understand_header_is_refused():
    env = ENVELOPE.replace("<s:Header>", '<s:Header><z:Odd xmlns:z="urn:z" s:mustUnderstand="true"/>').format(document="")
    with pytest.raises(soap.SoapFault) as caught:
        soap.parse("application/soap+xml", env.encode())
    assert caught.value.code == "MustUnderstand"


def test_an_mtom_answer_parses_back_with_its_parts():
    body = etree.Element(q("xdsb", "RetrieveDocumentSetResponse"), nsmap={"xdsb": NS["xdsb"]})
    parts: list = []
    data = b"%PDF\r\n\x00" * 1000
    soap.include(etree.SubElement(body, q("xdsb", "Document")), data, "application/pdf", parts)
    payload, content_type = soap.serialise(soap.envelope(ITI41, "urn:uuid:9", body), True, ITI41, parts)
    assert content_type.startswith("multipart/related") and 'start-info="application/soap+xml"' in content_type
    # the answer is itself a valid MTOM message: parse it as a request would be
    env = etree.fromstring(payload.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0])
    assert env.findtext(f"{q('soap', 'Header')}/{q('wsa', 'Action')}") == ITI41 + "Response"
    assert env.findtext(f"{q('soap', 'Header')}/{q('wsa', 'RelatesTo')}") == "urn:uuid:9"
    assert data in payload


def test_a_fault_carries_its_code_subcode_reason_and_xds_detail():
    from record_service.xds.errors import XdsError

    element = soap.fault(soap.SoapFault("VIHF invalide : signature incorrecte", subcode="wsse:FailedCheck",
                                        detail=[XdsError("XDSRegistryError", "signature incorrecte")]))
    values = [v.text for v in element.iter(q("soap", "Value"))]
    assert values == ["soap:Sender", "wsse:FailedCheck"]
    assert element.find(f".//{q('rs', 'RegistryError')}").get("errorCode") == "XDSRegistryError"
