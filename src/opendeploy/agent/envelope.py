"""Open the ``GenericEnvelope`` a deployment specification arrives in.

Two formats: ``TEXT/JSON`` (the JSON itself; OpenDeploy's server sends it to agents that
announce themselves as ``OPENDEPLOY_…``) and ``PKCS7/JSON`` (a PEM PKCS#7 SignedData with the
JSON embedded, what AWS sends). For PKCS7 we take the embedded content and **do not verify the
signature or the signer's chain** — exactly what the official agent does (it calls
``verify`` with ``NOVERIFY`` and ignores the result). The channel is already authenticated by
SigV4 over the command client, so the signature adds nothing the agent checks today.

cryptography loads PKCS#7 certificates but has no accessor for the signed content, so the few
DER steps from ``ContentInfo`` to ``eContent`` are read here (definite lengths, and the
constructed OCTET STRING form BER allows).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import pkcs7

from opendeploy.agent.spec import DeploymentSpecError

__all__ = ["open_envelope", "pkcs7_content"]

TEXT_JSON = "TEXT/JSON"
PKCS7_JSON = "PKCS7/JSON"

_SEQUENCE = 0x30
_OCTET_STRING = 0x04
_CONSTRUCTED_OCTET_STRING = 0x24
_CONTEXT_0 = 0xA0
_OID = 0x06
# 1.2.840.113549.1.7.2 (signedData)
_SIGNED_DATA_OID = bytes.fromhex("2a864886f70d010702")


def open_envelope(format_: str, payload: str) -> str:
    """The JSON text inside a ``GenericEnvelope`` (``TEXT/JSON`` or ``PKCS7/JSON``)."""
    if format_ == TEXT_JSON:
        return payload
    if format_ == PKCS7_JSON:
        return pkcs7_content(payload.encode()).decode("utf-8")
    raise DeploymentSpecError(f"Unsupported DeploymentSpecification format: {format_}")


def pkcs7_content(pem: bytes) -> bytes:
    """The embedded content of a PEM PKCS#7 SignedData, signature not verified (see module doc)."""
    try:
        # Validates the PEM and the PKCS#7 structure (and that it is SignedData).
        pkcs7.load_pem_pkcs7_certificates(pem)
    except ValueError as exc:
        raise DeploymentSpecError(
            f"DeploymentSpecification: not a PKCS#7 structure: {exc}"
        ) from exc
    der = _pem_body(pem)
    try:
        content_info = _children(_value(der, 0, _SEQUENCE))
        if _value(content_info[0], 0, _OID) != _SIGNED_DATA_OID:
            raise ValueError("the content type is not signedData")
        signed_data = _children(_value(_value(content_info[1], 0, _CONTEXT_0), 0, _SEQUENCE))
        encap = _children(_value(signed_data[2], 0, _SEQUENCE))
        if len(encap) < 2:
            raise ValueError("the signed data is detached (no embedded content)")
        content = _value(encap[1], 0, _CONTEXT_0)
        tag = content[0]
        if tag == _OCTET_STRING:
            return _value(content, 0, _OCTET_STRING)
        if tag == _CONSTRUCTED_OCTET_STRING:
            return b"".join(
                _value(part, 0, _OCTET_STRING)
                for part in _children(_value(content, 0, _CONSTRUCTED_OCTET_STRING))
            )
        raise ValueError(f"unexpected content tag 0x{tag:02x}")
    except (ValueError, IndexError) as exc:
        raise DeploymentSpecError(
            f"DeploymentSpecification: cannot read the PKCS#7 content: {exc}"
        ) from exc


def _pem_body(pem: bytes) -> bytes:
    import base64

    lines = [line.strip() for line in pem.splitlines()]
    body = [line for line in lines if line and not line.startswith(b"-----")]
    return base64.b64decode(b"".join(body))


def _element(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at ``offset``."""
    tag = data[offset]
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("indefinite or oversized length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("truncated element")
    return tag, start, end


def _value(data: bytes, offset: int, expected_tag: int) -> bytes:
    tag, start, end = _element(data, offset)
    if tag != expected_tag:
        raise ValueError(f"expected tag 0x{expected_tag:02x}, found 0x{tag:02x}")
    return data[start:end]


def _children(data: bytes) -> list[bytes]:
    """The encoded elements (tag, length and value) that make up ``data``."""
    out: list[bytes] = []
    offset = 0
    while offset < len(data):
        _, _, end = _element(data, offset)
        out.append(data[offset:end])
        offset = end
    return out
