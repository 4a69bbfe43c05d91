"""The S3-compatible front of the bundle store (path-style, SigV4 service ``s3``).

``aws deploy push`` and ``opendeploy push`` upload bundles through it, agents download them; see
``routes`` for the operations, ``objects`` for the S3 semantics over the blob store, ``chunked``
for ``aws-chunked`` bodies.
"""

from __future__ import annotations

from opendeploy.api.s3.routes import S3Front, s3_routes

__all__ = ["S3Front", "s3_routes"]
