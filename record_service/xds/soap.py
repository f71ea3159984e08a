"""SOAP 1.2 messages with WS-Addressing, plain or packaged as MTOM/XOP, in and out; SOAP faults.

In: ``application/soap+xml`` (the document bytes inline, base64) or ``multipart/related;
type="application/xop+xml"`` (the envelope in the root part, each optimised ``base64Binary`` a MIME
part named by an ``xop:Include``), parsed with lxml (no DTD, no entity, no network) and
python-multipart (the MIME parts). Out: the same two forms; ITI-43's answers are MTOM with the
documents as binary parts (ITI TF-2 V.8, TF-2 3.43.5).

A message that is not SOAP 1.2, misses its ``wsa:Action``, or is malformed is a :class:`SoapFault`
(``env:Sender``, HTTP 400): the client sent it, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote

from lxml import etree
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from record_service.xds import errors
from record_service.xds.terms import NS, RESPONSE_ACTIONS, q

SOAP_XML = "application/soap+xml"
_XOP_XML = "application/xop+xml"
_MAX_PARTS = 1_024           # MIME parts in one message: more documents than a deposit may carry
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True,
                          remove_comments=True)
_BLANKS = re.compile(rb"[ \t\r\n]*")
_UNDERSTOOD = {NS["wsa"], NS["wsse"]}  # header blocks this service processes (others may not be mustUnderstand)


class SoapFault(Exception):
    """A SOAP 1.2 fault: ``code`` Sender (the client's message, HTTP 400) or Receiver (this service, 503);
    ``subcode`` a qualified name such as ``wsse:FailedCheck``; ``reason`` the text a person reads."""

    def __init__(self, reason: str, code: str = "Sender", subcode: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None, detail: list | None = None):
        super().__init__(reason)
        self.reason, self.code, self.subcode = reason, code, subcode
        self.detail = detail or []  # XdsErrors, given in the fault's Detail as an rs:RegistryErrorList
        self.status = status or (400 if code in ("Sender", "MustUnderstand", "VersionMismatch") else 503)
        self.headers = headers or {}


@dataclass
class Message:
    """A received SOAP request: its operation, its Body's first element, its VIHF and its MIME parts."""

    action: str
    message_id: str | None
    body: etree._Element
    assertion: etree._Element | None
    mtom: bool
    parts: dict[str, bytes] = field(default_factory=dict)  # Content-ID (without <>) -> bytes

    def binary(self, element: etree._Element, where: str) -> bytes:
        """The bytes of a ``base64Binary`` element: its ``xop:Include``'s MIME part, or its base64 text."""
        include = element.find(q("xop", "Include"))
        if include is not None:
            href = include.get("href", "")
            if not href.startswith("cid:"):
                raise SoapFault(f"{where}: xop:Include href {href[:80]!r} is not a cid: URL")
            cid = unquote(href[4:])
            if cid not in self.parts:
                raise SoapFault(f"{where}: xop:Include names MIME part <{cid[:80]}>, which the message does not have")
            return self.parts[cid]
        text = "".join((element.text or "").split())
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SoapFault(f"{where} is not valid base64") from None


def parse(content_type: str | None, body: bytes) -> Message:
    """The request in ``body`` (given its Content-Type header); raises :class:`SoapFault` when it is no SOAP 1.2."""
    media, params = parse_options_header(content_type or "")
    media = media.decode("latin-1").lower()
    parts: dict[str, bytes] = {}
    if media == "multipart/related":
        root, parts = _mime_parts(body, params)
        mtom = True
    elif media == SOAP_XML:
        root, mtom = body, False
    elif media in ("text/xml", "application/xml"):
        raise SoapFault(f"Content-Type {media}: this is SOAP 1.1's; the XDS.b transactions are SOAP 1.2 "
                        f"({SOAP_XML}, or MTOM multipart/related)", code="VersionMismatch")
    else:
        raise SoapFault(f"Content-Type {media or 'missing'}: expected {SOAP_XML} or MTOM multipart/related")
    envelope = _xml(root)
    if mtom:
        _check_includes(envelope, parts)
    return _message(envelope, mtom, parts)


def _check_includes(envelope: etree._Element, parts: dict[str, bytes]) -> None:
    """Each MIME part of an MTOM message is the content of an ``xop:Include`` (XOP 1.0, 3.1): a part that none
    names is a packaging error (bytes the client meant for something), not something to ignore."""
    named = set()
    for include in envelope.iter(q("xop", "Include")):
        href = include.get("href", "")
        if not href.startswith("cid:"):
            raise SoapFault(f"xop:Include href {href[:80]!r} is not a cid: URL")
        named.add(unquote(href[4:]))
    stray = sorted(set(parts) - named)
    if stray:
        raise SoapFault(f"MIME part <{stray[0][:80]}> is named by no xop:Include of the message "
                        f"({len(stray)} such part(s))")


def _xml(data: bytes) -> etree._Element:
    if _has_doctype(data):  # refused before libxml2 reads it: its entities are never declared, let alone expanded
        raise SoapFault("a SOAP message has no DOCTYPE (SOAP 1.2 part 1, 5)")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as error:
        raise SoapFault(f"the message is not well-formed XML: {str(error)[:160]}") from None
    if root.getroottree().docinfo.doctype:
        raise SoapFault("a SOAP message has no DOCTYPE (SOAP 1.2 part 1, 5)")
    return root


def _has_doctype(data: bytes) -> bool:
    """Whether the prolog (after a BOM, the XML declaration, comments, processing instructions and blanks) has a
    DOCTYPE; one linear scan (a UTF-16 message is not scanned: its DOCTYPE is found once parsed)."""
    i = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    while True:
        i = _BLANKS.match(data, i).end()
        for opening, closing in ((b"<?", b"?>"), (b"<!--", b"-->")):
            if data.startswith(opening, i):
                end = data.find(closing, i + len(opening))
                if end < 0:
                    return False
                i = end + len(closing)
                break
        else:
            return data.startswith(b"<!DOCTYPE", i)


def _message(envelope: etree._Element, mtom: bool, parts: dict[str, bytes]) -> Message:
    if envelope.tag != q("soap", "Envelope"):
        if etree.QName(envelope).localname == "Envelope":
            raise SoapFault(f"Envelope in {etree.QName(envelope).namespace}: expected SOAP 1.2 ({NS['soap']})",
                            code="VersionMismatch")
        raise SoapFault(f"<{etree.QName(envelope).localname}> is not a SOAP 1.2 Envelope")
    header = envelope.find(q("soap", "Header"))
    body = envelope.find(q("soap", "Body"))
    if body is None or len(body) == 0:
        raise SoapFault("the SOAP Body is missing or empty")
    action = message_id = assertion = None
    if header is not None:
        for block in header:
            if not isinstance(block.tag, str):
                continue
            namespace = etree.QName(block).namespace
            if namespace not in _UNDERSTOOD and block.get(q("soap", "mustUnderstand")) in ("true", "1"):
                raise SoapFault(f"header block {block.tag[:120]} is mustUnderstand and not understood here",
                                code="MustUnderstand")
        action = (header.findtext(q("wsa", "Action")) or "").strip() or None
        message_id = (header.findtext(q("wsa", "MessageID")) or "").strip() or None
        security = header.find(q("wsse", "Security"))
        if security is not None:
            assertions = security.findall(q("saml", "Assertion"))
            if len(assertions) > 1:
                raise SoapFault("wsse:Security carries more than one saml:Assertion: send exactly one VIHF",
                                subcode="wsse:InvalidSecurity")
            assertion = assertions[0] if assertions else None
    if action is None:
        raise SoapFault("wsa:Action is missing from the SOAP header (IHE ITI TF-2 V.3.2.2, IHE-WSA101)",
                        subcode="wsa:MessageAddressingHeaderRequired")
    return Message(action=action, message_id=message_id, body=body[0], assertion=assertion, mtom=mtom, parts=parts)


def _mime_parts(body: bytes, params: dict[bytes, bytes]) -> tuple[bytes, dict[str, bytes]]:
    """(root part bytes, other parts by Content-ID) of an MTOM/XOP ``multipart/related`` body."""
    boundary = params.get(b"boundary")
    if not boundary:
        raise SoapFault("multipart/related without a boundary parameter")
    collected: list[tuple[dict[str, str], bytearray]] = []
    current: dict = {}

    def on_part_begin() -> None:
        if len(collected) >= _MAX_PARTS:
            raise SoapFault(f"more than {_MAX_PARTS} MIME parts in one message")
        collected.append(({}, bytearray()))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        current["field"] = current.get("field", b"") + data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        current["value"] = current.get("value", b"") + data[start:end]

    def on_header_end() -> None:
        name = current.pop("field", b"").decode("latin-1").strip().lower()
        collected[-1][0][name] = current.pop("value", b"").decode("latin-1").strip()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        collected[-1][1].extend(data[start:end])

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data})
    try:
        parser.write(body)
        parser.finalize()
    except SoapFault:
        raise
    except Exception as error:  # python-multipart's parse errors: a malformed package from the client
        raise SoapFault(f"the multipart/related body is malformed: {str(error)[:120]}") from None
    if not collected:
        raise SoapFault("the multipart/related body has no part (is its boundary the one Content-Type gives?)")
    if parser.state != MultipartState.END:  # no closing delimiter: the message was cut, its last part maybe too
        raise SoapFault("the multipart/related body ends before its closing boundary delimiter (--boundary--)")
    start = params.get(b"start", b"").decode("latin-1").strip().strip("<>")
    by_id: dict[str, tuple[dict[str, str], bytes]] = {}
    for headers, data in collected:
        cid = headers.get("content-id", "").strip().strip("<>")
        if cid in by_id:
            raise SoapFault(f"two MIME parts have the Content-ID <{cid[:80]}>: which one an xop:Include names "
                            "would be a guess")
        by_id[cid] = (headers, bytes(data))
    start = start or collected[0][0].get("content-id", "").strip().strip("<>")  # no start: the first part
    if start not in by_id:
        raise SoapFault(f"the start part <{start[:80]}> is not in the multipart/related body")
    root_headers, root = by_id.pop(start)
    root_type = root_headers.get("content-type", "")
    if root_type and parse_options_header(root_type)[0].decode("latin-1").lower() not in (_XOP_XML, SOAP_XML):
        raise SoapFault(f"the root MIME part is {root_type[:60]!r}: expected {_XOP_XML} (MTOM/XOP)")
    return root, {cid: data for cid, (_, data) in by_id.items()}


# --- out ------------------------------------------------------------------------------------------

def envelope(request_action: str | None, relates_to: str | None, body_child: etree._Element) -> etree._Element:
    """A response envelope: ``wsa:Action`` the request's response action, ``wsa:RelatesTo`` its MessageID."""
    env = etree.Element(q("soap", "Envelope"), nsmap={"soap": NS["soap"], "wsa": NS["wsa"]})
    header = etree.SubElement(env, q("soap", "Header"))
    action = RESPONSE_ACTIONS.get(request_action or "", "http://www.w3.org/2005/08/addressing/soap/fault")
    etree.SubElement(header, q("wsa", "Action"), {q("soap", "mustUnderstand"): "true"}).text = action
    etree.SubElement(header, q("wsa", "MessageID")).text = f"urn:uuid:{uuid.uuid4()}"
    if relates_to:
        etree.SubElement(header, q("wsa", "RelatesTo")).text = relates_to
    etree.SubElement(env, q("soap", "Body")).append(body_child)
    return env


def serialise(env: etree._Element, mtom: bool, action: str | None,
              parts: list[tuple[str, bytes, str]] = ()) -> tuple[bytes, str]:
    """(body, Content-Type) of a response: plain SOAP 1.2, or MTOM with ``parts`` ((cid, bytes, type), each
    named by an ``xop:Include`` already in ``env``)."""
    xml = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    response_action = RESPONSE_ACTIONS.get(action or "", "")
    if not mtom:
        return xml, f'{SOAP_XML}; charset=UTF-8; action="{response_action}"'
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_id = f"root.{uuid.uuid4().hex}@segur-loadsim"
    chunks = [f"--{boundary}\r\nContent-Type: {_XOP_XML}; charset=UTF-8; type=\"{SOAP_XML}\"\r\n"
              f"Content-Transfer-Encoding: binary\r\nContent-ID: <{root_id}>\r\n\r\n".encode(), xml]
    for cid, data, media_type in parts:
        chunks += [f"\r\n--{boundary}\r\nContent-Type: {media_type}\r\nContent-Transfer-Encoding: binary\r\n"
                   f"Content-ID: <{cid}>\r\n\r\n".encode(), data]
    chunks.append(f"\r\n--{boundary}--\r\n".encode())
    content_type = (f'multipart/related; boundary="{boundary}"; type="{_XOP_XML}"; start="<{root_id}>"; '
                    f'start-info="{SOAP_XML}"; action="{response_action}"')
    return b"".join(chunks), content_type


def include(parent: etree._Element, data: bytes, media_type: str,
            parts: list[tuple[str, bytes, str]]) -> None:
    """Put ``data`` in ``parent`` as an ``xop:Include`` of a new MIME part (added to ``parts``)."""
    cid = f"{uuid.uuid4().hex}@segur-loadsim"
    etree.SubElement(parent, q("xop", "Include"), {"href": f"cid:{cid}"}, nsmap={"xop": NS["xop"]})
    parts.append((cid, data, media_type))


def fault(error: SoapFault) -> etree._Element:
    """The ``soap:Fault`` element of ``error`` (SOAP 1.2 part 1, 5.4)."""
    element = etree.Element(q("soap", "Fault"), nsmap={"soap": NS["soap"], "wsse": NS["wsse"], "wsa": NS["wsa"]})
    code = etree.SubElement(element, q("soap", "Code"))
    etree.SubElement(code, q("soap", "Value")).text = f"soap:{error.code}"
    if error.subcode:
        sub = etree.SubElement(code, q("soap", "Subcode"))
        etree.SubElement(sub, q("soap", "Value")).text = error.subcode
    reason = etree.SubElement(element, q("soap", "Reason"))
    etree.SubElement(reason, q("soap", "Text"), {"{http://www.w3.org/XML/1998/namespace}lang": "fr"}).text = \
        error.reason
    if error.detail:
        errors.append_errors(etree.SubElement(element, q("soap", "Detail")), error.detail)
    return element


def fault_bytes(reason: str, code: str = "Sender") -> tuple[bytes, str]:
    """(body, Content-Type) of a whole SOAP 1.2 fault message, for an answer given before any handler ran (the
    admission's 413, 408 and 503 to a request of this front)."""
    env = envelope(None, None, fault(SoapFault(reason, code=code)))
    return serialise(env, False, None)
