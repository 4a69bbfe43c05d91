"""An uploaded body on its way to the blob store: spooled to disk, hashed, checked.

S3 uploads are checked several ways at once: ``Content-MD5`` (base64 MD5), the flexible checksums
``x-amz-checksum-<algorithm>`` (base64; in a header or an aws-chunked trailer; botocore sends
CRC32 by default) and, for a signed payload, ``x-amz-content-sha256``. :class:`BodySpool` computes
what it needs while the bytes pass through, in fixed memory, into a temporary file; the route then
checks the claims and hands the file to the blob store.

CRC32C and CRC64NVME need a native library that OpenDeploy does not depend on; bodies that carry
those are stored without that particular check (their SHA-256 and MD5 are still computed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import tempfile
import zlib
from pathlib import Path
from typing import IO, Any

from opendeploy.api.s3.errors import (
    BadDigestError,
    ContentSha256MismatchError,
    EntityTooLargeError,
    InvalidDigestError,
    InvalidRequestError,
)
from opendeploy.api.sigv4 import same_text

#: Algorithms of ``x-amz-checksum-<name>`` that are verified here.
VERIFIED_CHECKSUMS = ("crc32", "sha1", "sha256")
#: Every checksum name S3 defines.
KNOWN_CHECKSUMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def _checksum(name: str) -> Any:
    if name == "crc32":
        return _Crc32()
    if name == "sha1":
        return hashlib.sha1(usedforsecurity=False)
    return hashlib.sha256()


class BodySpool:
    """A temporary file receiving one body, with its size, MD5, SHA-256 and checksums.

    Use as a context manager; the file is removed on exit. ``max_size`` bounds what is written.
    """

    def __init__(self, directory: Path, *, max_size: int) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".s3-body-")
        self.path = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "w+b")
        self._max_size = max_size
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self._checksums = {name: _checksum(name) for name in VERIFIED_CHECKSUMS}

    def __enter__(self) -> BodySpool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close and remove the file (idempotent)."""
        self._file.close()
        self.path.unlink(missing_ok=True)

    def write(self, data: bytes) -> None:
        """Append payload bytes (already decoded from aws-chunked, if it was)."""
        self.size += len(data)
        if self.size > self._max_size:
            raise EntityTooLargeError(
                f"Your proposed upload exceeds the maximum allowed size: more than "
                f"{self._max_size} bytes."
            )
        self.md5.update(data)
        self.sha256.update(data)
        for checksum in self._checksums.values():
            checksum.update(data)
        self._file.write(data)

    def rewind(self) -> IO[bytes]:
        """The file, flushed and positioned at its start, for the blob store to read."""
        self._file.flush()
        self._file.seek(0)
        return self._file

    def fileno(self) -> int:
        self._file.flush()
        return self._file.fileno()

    def check_content_md5(self, header: str | None) -> None:
        """Check a ``Content-MD5`` header (base64 of the 16-byte MD5) against the body."""
        if header is None:
            return
        try:
            claimed = base64.b64decode(header.strip(), validate=True)
        except binascii.Error:
            claimed = b""
        if len(claimed) != 16:
            raise InvalidDigestError(f"The Content-MD5 you specified is not valid: {header!r}.")
        if not hmac.compare_digest(claimed, self.md5.digest()):
            raise BadDigestError("The Content-MD5 you specified did not match what we received.")

    def check_checksums(self, values: dict[str, str]) -> None:
        """Check ``x-amz-checksum-<name>`` values (header or trailer) against the body."""
        for header, value in values.items():
            name = header.removeprefix("x-amz-checksum-")
            if name not in KNOWN_CHECKSUMS:
                raise InvalidRequestError(
                    f"{header}: {name!r} is not a checksum algorithm S3 knows "
                    f"({', '.join(KNOWN_CHECKSUMS)})."
                )
            checksum = self._checksums.get(name)
            if checksum is None:
                continue  # crc32c / crc64nvme: not verified (see the module docstring)
            try:
                claimed = base64.b64decode(value.strip(), validate=True)
            except binascii.Error:
                raise InvalidRequestError(
                    f"Value for {header} header is invalid: {value!r} is not base64."
                ) from None
            if not hmac.compare_digest(claimed, checksum.digest()):
                raise BadDigestError(
                    f"The {name.upper()} you specified did not match the calculated checksum."
                )

    def check_content_sha256(self, claimed: str) -> None:
        """Check a hex ``x-amz-content-sha256`` against the body."""
        if not same_text(claimed, self.sha256.hexdigest()):
            raise ContentSha256MismatchError(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            )
