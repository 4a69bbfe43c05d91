"""Virtual-hosted-style S3 addressing: ``https://<bucket>.<domain>/<key>`` as ``/<bucket>/<key>``.

The S3 front routes path-style requests. Clients that address buckets by host name instead
(aws-sdk-s3 for Ruby, as the official CodeDeploy agent uses it, does so for any endpoint that is
a DNS name) name the bucket in the ``Host`` header. For each domain given with ``--s3-domain``,
a request for ``<bucket>.<domain>`` has ``/<bucket>`` put in front of its routing path, as MinIO
does with its configured domain. The ``raw_path`` stays as the client sent and signed it: SigV4's
canonical request is over that path and the ``Host`` header, both unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["VirtualHostedBuckets", "bucket_from_host", "normalize_domain"]


def normalize_domain(domain: str) -> str:
    """A domain as :func:`bucket_from_host` compares it: lower case, no surrounding dots."""
    return domain.strip().lower().strip(".")


def bucket_from_host(host: str, domains: Sequence[str]) -> str | None:
    """The bucket a ``Host`` header names under one of ``domains`` (normalized, see
    :func:`normalize_domain`); None when it names none.

    ``host`` may carry a port and compares case-insensitively. A bucket may contain dots
    (``my.bucket.s3.example.com`` under ``s3.example.com`` is bucket ``my.bucket``)."""
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal is never a bucket's host
        return None
    name = name.rsplit(":", 1)[0].rstrip(".")
    for domain in domains:
        suffix = "." + domain
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


class VirtualHostedBuckets:
    """ASGI middleware: route ``<bucket>.<domain>`` requests as path-style ones."""

    def __init__(self, app: ASGIApp, domains: Sequence[str]) -> None:
        self.app = app
        self.domains = tuple(normalize_domain(d) for d in domains)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((v for k, v in scope["headers"] if k == b"host"), None)
            bucket = bucket_from_host(host.decode("latin-1"), self.domains) if host else None
            if bucket is not None:
                raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
                scope = {**scope, "path": f"/{bucket}{scope['path']}", "raw_path": raw_path}
        await self.app(scope, receive, send)
