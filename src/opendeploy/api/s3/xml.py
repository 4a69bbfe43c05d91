"""The XML documents of the S3 subset: errors, results, and the CompleteMultipartUpload request.

S3 answers in the ``http://s3.amazonaws.com/doc/2006-03-01/`` namespace (botocore's parser drops
namespaces but other clients keep them). Request bodies are small (the route caps them) and
parsed with the standard library's expat, which expands no external entities.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import datetime

from opendeploy.api.s3.errors import MalformedXMLError

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

#: An element: its name and either text or child elements (name, value) in order.
Node = tuple[str, "str | Iterable[Node]"]


def iso_time(moment: datetime) -> str:
    """``2026-11-22T01:02:03.000Z``, the timestamp format of S3's XML."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def document(root: str, children: str | Iterable[Node], *, namespace: bool = True) -> bytes:
    """Render ``<root>children…</root>`` (or ``<root>text</root>``) with the XML declaration."""
    element = ET.Element(root, {"xmlns": NAMESPACE} if namespace else {})
    if isinstance(children, str):
        element.text = children
    else:
        _append(element, children)
    rendered: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=False)
    return _DECLARATION + rendered


def _append(parent: ET.Element, children: Iterable[Node]) -> None:
    for name, value in children:
        child = ET.SubElement(parent, name)
        if isinstance(value, str):
            child.text = value
        else:
            _append(child, value)


def error_document(code: str, message: str, request_id: str, details: Mapping[str, str]) -> bytes:
    """``<Error><Code/><Message/>…details…<RequestId/></Error>`` (S3 puts no namespace here)."""
    children: list[Node] = [("Code", code), ("Message", message)]
    children += [(name, value) for name, value in details.items()]
    children += [("RequestId", request_id), ("HostId", request_id)]
    return document("Error", children, namespace=False)


def parse_complete_multipart(body: bytes) -> list[tuple[int, str]]:
    """The (PartNumber, ETag) pairs of a ``CompleteMultipartUpload`` request body, in order."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise MalformedXMLError(
            "The XML you provided was not well-formed or did not validate against our published "
            f"schema: {exc}."
        ) from None
    if _local(root.tag) != "CompleteMultipartUpload":
        raise MalformedXMLError(
            f"The XML you provided has root element {_local(root.tag)!r}, "
            "not 'CompleteMultipartUpload'."
        )
    parts: list[tuple[int, str]] = []
    for part in root:
        if _local(part.tag) != "Part":
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in part}
        number, etag = fields.get("PartNumber", ""), fields.get("ETag")
        if not number.isdigit() or etag is None:
            raise MalformedXMLError(
                f"The XML you provided has a Part without a numeric PartNumber and an ETag: "
                f"PartNumber={number!r}."
            )
        parts.append((int(number), etag))
    return parts


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
