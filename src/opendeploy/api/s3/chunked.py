"""Decode ``aws-chunked`` request bodies, verifying chunk signatures and trailing checksums.

S3 clients that cannot hash a body before sending it (botocore over HTTPS since 1.36, the Java and
Go SDKs, MinIO's client) send it as a series of chunks, each preceded by its size in hex::

    <hex size>[;chunk-signature=<64 hex>]\\r\\n<data>\\r\\n   … repeated, then
    0[;chunk-signature=<64 hex>]\\r\\n
    [<trailer name>:<value>\\r\\n …][x-amz-trailer-signature:<64 hex>\\r\\n]\\r\\n

``x-amz-content-sha256`` says which form: ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` signs every chunk,
chained from the request's seed signature; ``…-PAYLOAD-TRAILER`` also signs the trailer;
``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` signs nothing after the headers and relies on the trailing
checksum (TLS protects the bytes). The chunk string to sign is, per the SigV4 streaming spec::

    AWS4-HMAC-SHA256-PAYLOAD \\n <timestamp> \\n <scope> \\n <previous signature> \\n
    <sha256 of ""> \\n <sha256 of the chunk data>

:class:`AwsChunkedDecoder` is sans-I/O: ``feed`` it the raw bytes as they arrive and it returns the
payload bytes decoded so far; ``finish`` checks that the body ended where it should and returns the
trailers. Memory stays bounded by one chunk header line; chunk data passes straight through.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from opendeploy.api.s3.errors import (
    IncompleteBodyError,
    InvalidChunkError,
    SignatureDoesNotMatchError,
)
from opendeploy.api.sigv4 import same_text

SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
MODES = frozenset({SIGNED, SIGNED_TRAILER, UNSIGNED_TRAILER})

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: The longest chunk header or trailer line accepted (a size, a signature and some slack).
MAX_LINE = 4096
#: The most trailer lines accepted (a checksum and its signature, with room to spare).
MAX_TRAILERS = 16


@dataclass(frozen=True)
class ChunkSigning:
    """What chains the chunk signatures: the key, timestamp and scope of the request's signature."""

    signing_key: bytes
    timestamp: str
    scope: str
    seed_signature: str


class AwsChunkedDecoder:
    """Incremental decoder for one ``aws-chunked`` body (see the module docstring)."""

    def __init__(self, mode: str, signing: ChunkSigning | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"aws-chunked mode {mode!r} is not one of {', '.join(sorted(MODES))}")
        if mode != UNSIGNED_TRAILER and signing is None:
            raise ValueError(f"aws-chunked mode {mode} needs the request's signing material")
        self._mode = mode
        self._signing = signing
        self._previous = signing.seed_signature if signing else ""
        self._buffer = bytearray()
        self._state = "header"  # header -> data -> data-end -> header … -> trailer -> done
        self._remaining = 0  # bytes of chunk data still to come
        self._chunk_signature = ""
        self._chunk_hash = hashlib.sha256()
        self._trailers: dict[str, str] = {}
        self._trailer_lines: list[str] = []
        self.decoded_length = 0

    @property
    def signed_chunks(self) -> bool:
        return self._mode != UNSIGNED_TRAILER

    def feed(self, data: bytes) -> bytes:
        """Consume raw body bytes; return the payload bytes they complete (possibly empty)."""
        self._buffer += data
        out = bytearray()
        while self._buffer and self._state != "done":
            if self._state == "header":
                line = self._take_line()
                if line is None:
                    break
                self._start_chunk(line)
            elif self._state == "data":
                piece = bytes(self._buffer[: self._remaining])
                del self._buffer[: len(piece)]
                self._remaining -= len(piece)
                self._chunk_hash.update(piece)
                self.decoded_length += len(piece)
                out += piece
                if self._remaining == 0:
                    self._state = "data-end"
            elif self._state == "data-end":
                if len(self._buffer) < 2:
                    break
                if self._buffer[:2] != b"\r\n":
                    raise InvalidChunkError("aws-chunked: chunk data is not followed by CRLF.")
                del self._buffer[:2]
                self._end_chunk()
                self._state = "header"
            elif self._state == "trailer":
                line = self._take_line()
                if line is None:
                    break
                self._trailer_line(line)
        if self._state == "done" and self._buffer:
            raise InvalidChunkError(
                f"aws-chunked: {len(self._buffer)} byte(s) follow the end of the chunked body."
            )
        return bytes(out)

    def finish(self) -> dict[str, str]:
        """Check the body is complete; return the trailers (lower-case names -> values)."""
        if self._state != "done":
            raise IncompleteBodyError(
                "You did not provide the number of bytes specified by the aws-chunked encoding: "
                "the body ended inside a chunk or before the final zero-length chunk."
            )
        return dict(self._trailers)

    def _take_line(self) -> str | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_LINE:
                raise InvalidChunkError(f"aws-chunked: a header line is longer than {MAX_LINE}.")
            return None
        if end > MAX_LINE:
            raise InvalidChunkError(f"aws-chunked: a header line is longer than {MAX_LINE}.")
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidChunkError("aws-chunked: a header line is not ASCII.") from None

    def _start_chunk(self, line: str) -> None:
        size_text, _, extension = line.partition(";")
        try:
            size = int(size_text.strip(), 16)
        except ValueError:
            raise InvalidChunkError(
                f"aws-chunked: chunk size {size_text!r} is not a hexadecimal number."
            ) from None
        if size < 0:
            raise InvalidChunkError(f"aws-chunked: chunk size {size_text!r} is negative.")
        if self.signed_chunks:
            name, _, signature = extension.partition("=")
            if name.strip() != "chunk-signature" or not signature.strip():
                raise SignatureDoesNotMatchError(
                    f"aws-chunked: chunk header {line[:100]!r} carries no chunk-signature, "
                    f"which {self._mode} requires."
                )
            self._chunk_signature = signature.strip().lower()
        self._chunk_hash = hashlib.sha256()
        self._remaining = size
        if size == 0:
            self._end_chunk()
            # Trailer lines (none for SIGNED) then the empty line that ends the body.
            self._state = "trailer"
        else:
            self._state = "data"

    def _end_chunk(self) -> None:
        if not self.signed_chunks:
            return
        assert self._signing is not None
        expected = self._sign(
            "AWS4-HMAC-SHA256-PAYLOAD",
            f"{self._previous}\n{_EMPTY_SHA256}\n{self._chunk_hash.hexdigest()}",
        )
        if not same_text(self._chunk_signature, expected):
            raise SignatureDoesNotMatchError(
                "The request signature we calculated does not match the signature you provided: "
                f"aws-chunked chunk ending at payload byte {self.decoded_length}."
            )
        self._previous = expected

    def _trailer_line(self, line: str) -> None:
        if line == "":
            self._check_trailer_signature()
            self._state = "done"
            return
        if len(self._trailer_lines) >= MAX_TRAILERS:
            raise InvalidChunkError(f"aws-chunked: more than {MAX_TRAILERS} trailer lines.")
        name, sep, value = line.partition(":")
        if not sep:
            raise InvalidChunkError(f"aws-chunked: trailer line {line[:100]!r} has no ':'.")
        name = name.strip().lower()
        if name == "x-amz-trailer-signature":
            self._trailers[name] = value.strip().lower()
            return
        self._trailer_lines.append(f"{name}:{value.strip()}\n")
        self._trailers[name] = value.strip()

    def _check_trailer_signature(self) -> None:
        if self._mode != SIGNED_TRAILER:
            if self._mode == SIGNED and self._trailer_lines:
                raise InvalidChunkError(
                    f"aws-chunked: {SIGNED} bodies carry no trailers; use {SIGNED_TRAILER}."
                )
            return
        claimed = self._trailers.pop("x-amz-trailer-signature", "")
        trailer_hash = hashlib.sha256("".join(self._trailer_lines).encode()).hexdigest()
        expected = self._sign("AWS4-HMAC-SHA256-TRAILER", f"{self._previous}\n{trailer_hash}")
        if not same_text(claimed, expected):
            raise SignatureDoesNotMatchError(
                "The request signature we calculated does not match the signature you provided: "
                "aws-chunked trailer signature."
            )

    def _sign(self, algorithm: str, tail: str) -> str:
        assert self._signing is not None
        string_to_sign = f"{algorithm}\n{self._signing.timestamp}\n{self._signing.scope}\n{tail}"
        return hmac.new(
            self._signing.signing_key, string_to_sign.encode("utf-8"), hashlib.sha256
        ).hexdigest()


__all__ = [
    "MODES",
    "SIGNED",
    "SIGNED_TRAILER",
    "UNSIGNED_TRAILER",
    "AwsChunkedDecoder",
    "ChunkSigning",
]
