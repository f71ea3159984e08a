"""XDS.b on the wire for the tests that send what a client may get wrong: raw POSTs (any Content-Type, any
bytes), MTOM/XOP packaging of a request (with parts left out, added, duplicated, or a wrong boundary), and
the answer read back as a client reads it (plain SOAP or MTOM), keeping the HTTP status, headers and bytes."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

from lxml import etree

from record_service.xds.terms import NS, q

SOAP_XML = "application/soap+xml; charset=UTF-8"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    payload: bytes
    body: etree._Element | None    # the SOAP Body's first element (documents put back inline), if any
    documents: dict[str, bytes]    # ITI-43: DocumentUniqueId -> bytes

    def fault(self) -> tuple[str, str, str] | None:
        """(Code, Subcode, Reason text) when the answer is a SOAP fault."""
        if self.body is None or self.body.tag != q("soap", "Fault"):
            return None
        code = self.body.findtext(f"{q('soap', 'Code')}/{q('soap', 'Value')}") or ""
        sub = self.body.findtext(f"{q('soap', 'Code')}/{q('soap', 'Subcode')}/{q('soap', 'Value')}") or ""
        return code, sub, self.body.findtext(f"{q('soap', 'Reason')}/{q('soap', 'Text')}") or ""

    def registry_status(self) -> tuple[str, list[str]]:
        """(Success / Failure / PartialSuccess, the RegistryError codes) of a registry answer."""
        assert self.body is not None, self.payload[:300]
        response = self.body
        if response.tag == q("xdsb", "RetrieveDocumentSetResponse"):
            response = response.find(q("rs", "RegistryResponse"))
        return (response.get("status", "").rsplit(":", 1)[-1],
                [e.get("errorCode") for e in response.iter(q("rs", "RegistryError"))])


def post(base_url: str, path: str, body: bytes, content_type: str | None = SOAP_XML,
         headers: dict[str, str] | None = None, timeout: float = 30) -> Answer:
    request = urllib.request.Request(base_url + path, data=body, method="POST")
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, payload, got = answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        status, payload, got = error.code, error.read(), dict(error.headers)
    got = {k.lower(): v for k, v in got.items()}
    return read_answer(status, got, payload)


def read_answer(status: int, headers: dict[str, str], payload: bytes) -> Answer:
    content_type = headers.get("content-type", "")
    binaries: dict[str, bytes] = {}
    if content_type.startswith("multipart/related"):
        boundary = content_type.split('boundary="', 1)[1].split('"', 1)[0].encode()
        parts = payload.split(b"--" + boundary)[1:-1]
        root = parts[0].split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
        for part in parts[1:]:
            head, data = part.split(b"\r\n\r\n", 1)
            cid = head.decode().split("Content-ID: <", 1)[1].split(">", 1)[0]
            binaries[cid] = data[:-2]
    else:
        root = payload
    try:
        envelope = etree.fromstring(root)
    except etree.XMLSyntaxError:
        return Answer(status, headers, payload, None, {})
    body = envelope.find(q("soap", "Body")) if envelope.tag == q("soap", "Envelope") else None
    child = body[0] if body is not None and len(body) else None
    documents: dict[str, bytes] = {}
    if child is not None:
        for response in child.iter(q("xdsb", "DocumentResponse")):
            document = response.find(q("xdsb", "Document"))
            include = document.find(q("xop", "Include"))
            data = binaries[include.get("href")[4:]] if include is not None else base64.b64decode(document.text or "")
            documents[response.findtext(q("xdsb", "DocumentUniqueId"))] = data
    return Answer(status, headers, payload, child, documents)


def mtom(envelope: bytes, *, boundary: str = "MIMEBoundary_test", header_boundary: str | None = None,
         drop: set[int] = frozenset(), extra: dict[str, bytes] | None = None, duplicate: int | None = None,
         start: str | None = None, root_type: str = 'application/xop+xml; charset=UTF-8; type="application/soap+xml"',
         closed: bool = True) -> tuple[bytes, str]:
    """(body, Content-Type) of ``envelope`` sent as MTOM/XOP: each xdsb:Document's base64 text becomes an
    ``xop:Include`` of a binary MIME part. ``drop``: the indexes of documents whose part is left out;
    ``extra``: more parts (cid -> bytes) that no Include names; ``duplicate``: a document whose part is sent
    twice under its Content-ID (with other bytes the second time); ``header_boundary``: the boundary the
    Content-Type announces, when not the one used; ``closed``: the closing delimiter is sent."""
    root = etree.fromstring(envelope)
    parts: list[tuple[str, bytes]] = []
    for index, document in enumerate(root.iter(q("xdsb", "Document"))):
        data = base64.b64decode(document.text or "")
        cid = f"doc{index}.{uuid.uuid4().hex}@test"
        document.text = None
        etree.SubElement(document, q("xop", "Include"), {"href": f"cid:{cid}"}, nsmap={"xop": NS["xop"]})
        if index not in drop:
            parts.append((cid, data))
        if index == duplicate:
            parts.append((cid, data[::-1] + b"other"))
    parts += list((extra or {}).items())
    root_id = "root.message@test"
    chunks = [f"--{boundary}\r\nContent-Type: {root_type}\r\nContent-Transfer-Encoding: binary\r\n"
              f"Content-ID: <{root_id}>\r\n\r\n".encode(), etree.tostring(root, xml_declaration=True, encoding="UTF-8")]
    for cid, data in parts:
        chunks += [f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                   f"Content-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n\r\n".encode(), data]
    chunks.append(f"\r\n--{boundary}--\r\n".encode() if closed else b"\r\n")
    content_type = (f'multipart/related; boundary="{header_boundary or boundary}"; type="application/xop+xml"; '
                    f'start="<{start or root_id}>"; start-info="application/soap+xml"')
    return b"".join(chunks), content_type
