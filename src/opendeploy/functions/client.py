"""The seam between the server's own Lambda client (deployments) and the built-in host.

Deployments drive functions through boto3's Lambda client with boto3's standard configuration.
When the function host is enabled and ``AWS_ENDPOINT_URL_LAMBDA`` is not set, that client should
reach this very server, signed with the function host's key: :func:`self_client_options` gives
the keyword arguments for ``boto3.client("lambda", **options)`` then, and None otherwise (boto3's
own resolution: AWS Lambda, LocalStack, moto …).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opendeploy.built_once import BuiltOnce

#: The principal of the access key function processes (and the server's own Lambda client)
#: sign with.
FUNCTION_HOST_PRINCIPAL = "function-host"


@dataclass(frozen=True)
class SelfEndpoint:
    """Where this server's Lambda API is and the key to sign for it with."""

    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    ca_bundle: Path | None = None


def self_client_options(
    target: SelfEndpoint | None, environ: Mapping[str, str] = os.environ
) -> dict[str, object] | None:
    """``boto3.client("lambda", **options)`` for the built-in host, or None to leave boto3's
    standard configuration alone (the host is off, or ``AWS_ENDPOINT_URL_LAMBDA`` names
    another endpoint)."""
    if target is None or environ.get("AWS_ENDPOINT_URL_LAMBDA"):
        return None
    options: dict[str, object] = {
        "endpoint_url": target.endpoint_url,
        "region_name": target.region,
        "aws_access_key_id": target.access_key_id,
        "aws_secret_access_key": target.secret_access_key,
    }
    if target.ca_bundle is not None:
        options["verify"] = str(target.ca_bundle)
    return options


def self_client_factory(
    target: SelfEndpoint | None,
    config: Any = None,
    environ: Mapping[str, str] = os.environ,
) -> Callable[[], Any] | None:
    """A factory of one shared boto3 ``lambda`` client for the built-in host (built on first
    use, with botocore ``config``), or None when :func:`self_client_options` says to leave
    boto3's standard configuration alone: what a Lambda effector's ``client`` argument takes."""
    options = self_client_options(target, environ)
    if options is None:
        return None

    def client() -> Any:
        import boto3

        session = boto3.session.Session()  # one per client: sessions are not thread-safe
        return session.client("lambda", config=config, **options)

    return BuiltOnce(client)
