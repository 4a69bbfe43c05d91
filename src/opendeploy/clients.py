"""botocore clients for OpenDeploy's two APIs, built from the models shipped in ``opendeploy/data``.

- :func:`command_client`: the CodeDeploy Command API (``codedeploy-commands``: PollHostCommand …),
  signed with a host's own key, as the agent uses it;
- :func:`codedeploy_client`: the CodeDeploy control API, for the CLI;
- :func:`request_instance_credentials`: the one OpenDeploy-only route
  (``POST /opendeploy/v1/instance-credentials``), which issues an on-premises instance its key.

Signing, retries and serialization are botocore's; this module only picks the model directory,
the credentials and the transport settings. The data directory is added in front of botocore's
own search path, so our copy of the ``codedeploy`` model (and the Command API model, which
botocore does not ship) is what the clients use.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError

from opendeploy.errors import OpenDeployError

__all__ = [
    "AGENT_VERSION_HEADER",
    "DATA_DIR",
    "RECEIVED_COMMANDS_HEADER",
    "INSTANCE_CREDENTIALS_PATH",
    "ClientError",
    "InstanceCredentials",
    "agent_version",
    "codedeploy_client",
    "command_client",
    "new_session",
    "request_instance_credentials",
]

#: Where the service models live, in botocore's ``<service>/<api-version>/service-2.json`` layout.
DATA_DIR = Path(__file__).resolve().parent / "data"
#: Every Command API request names the agent's version in this header (as the official agent).
AGENT_VERSION_HEADER = "x-amz-codedeploy-agent-version"
#: OpenDeploy's agent lists the host commands it received in this header of PollHostCommand,
#: so that the server hands out again at once one whose answer was lost (the server's side:
#: ``opendeploy.api.commands.received``).
RECEIVED_COMMANDS_HEADER = "x-opendeploy-received-commands"
#: The route that issues an on-premises instance its access key.
INSTANCE_CREDENTIALS_PATH = "/opendeploy/v1/instance-credentials"

COMMAND_SERVICE = "codedeploy-commands"

# botocore sessions are not safe to share across threads while clients are being created.
_session_lock = threading.Lock()


class ClientError(OpenDeployError):
    """A call outside botocore (the instance-credentials route) failed; names the endpoint."""


def agent_version() -> str:
    """``OPENDEPLOY_<version>``: tells the server this agent reads ``TEXT/JSON`` specifications."""
    try:
        version = metadata.version("opendeploy")
    except metadata.PackageNotFoundError:  # running from a source tree without metadata
        version = "0.0.0"
    return f"OPENDEPLOY_{version}"


def new_session(profile: str | None = None) -> botocore.session.Session:
    """A botocore session that loads models from :data:`DATA_DIR` first."""
    session = botocore.session.Session(profile=profile)
    loader = session.get_component("data_loader")
    loader.search_paths.insert(0, str(DATA_DIR))
    return session


def command_client(
    *,
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    agent_version: str,
    session_token: str | None = None,
    proxy: str | None = None,
    read_timeout: float = 80,
    connect_timeout: float = 10,
    verify: bool | str | None = None,
    max_attempts: int = 3,
) -> Any:
    """A Command API client for one host, signed with its own key (service ``codedeploy-commands``).

    ``read_timeout`` must exceed the time the server holds a PollHostCommand open. ``verify`` is
    a CA bundle path or a bool, as botocore takes it; ``None`` means ``AWS_CA_BUNDLE``, else
    ``SSL_CERT_FILE`` (what the official agent trusts), else the default CAs. Every request carries
    ``x-amz-codedeploy-agent-version: <agent_version>``.
    """
    config = Config(
        read_timeout=read_timeout,
        connect_timeout=connect_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        proxies={"http": proxy, "https": proxy} if proxy else None,
        user_agent_extra=agent_version,
    )
    if verify is None:
        verify = os.environ.get("AWS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None
    with _session_lock:
        session = new_session()
        client = session.create_client(
            COMMAND_SERVICE,
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            verify=verify,
            config=config,
        )

    def add_version_header(request: AWSRequest, **_: Any) -> None:
        request.headers[AGENT_VERSION_HEADER] = agent_version

    # before-sign: the header is then covered by the signature like the official agent's.
    client.meta.events.register(f"before-sign.{COMMAND_SERVICE}", add_version_header)
    return client


def codedeploy_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    verify: bool | str | None = None,
) -> Any:
    """A control-API client, credentials and region found the AWS way.

    Explicit arguments win; otherwise botocore's chain applies (``AWS_*`` variables, the
    profile, the shared credentials/config files, which may also carry ``endpoint_url``).
    """
    with _session_lock:
        session = new_session(profile)
        return session.create_client(
            "codedeploy",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            verify=verify,
        )


@dataclass(frozen=True, kw_only=True)
class InstanceCredentials:
    """What the server issued to one on-premises instance."""

    access_key_id: str
    secret_access_key: str
    iam_user_arn: str
    #: The deployment-spec signer's certificate (PEM), for the official agent's CA file; None
    #: from a server that does not send it.
    spec_signer_certificate: str | None = None


def request_instance_credentials(
    client: Any, instance_name: str, *, timeout: float = 30, verify: bool | str | None = None
) -> InstanceCredentials:
    """Ask the server for ``instance_name``'s access key (the admin-signed OpenDeploy route).

    ``client`` is a :func:`codedeploy_client`; its endpoint, region and credentials are reused,
    so the request is signed exactly like the control-API calls (service ``codedeploy``).
    With ``verify`` None the request goes through the client's own HTTP session, so it trusts
    what the client trusts (``AWS_CA_BUNDLE``, the profile's ``ca_bundle``, ``--no-verify-ssl``);
    a path or a bool overrides that.
    """
    endpoint = client.meta.endpoint_url.rstrip("/")
    url = endpoint + INSTANCE_CREDENTIALS_PATH
    body = json.dumps({"instanceName": instance_name}).encode()
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
    )
    # botocore's own accessor (used by its presigners): the credentials the chain resolved.
    credentials: Credentials | None = client._get_credentials()
    if credentials is None:
        raise ClientError(f"no AWS credentials to sign the request to {url} with")
    SigV4Auth(credentials.get_frozen_credentials(), "codedeploy", client.meta.region_name).add_auth(
        request
    )
    prepared = request.prepare()
    http_request = urllib.request.Request(
        url, data=body, headers=dict(prepared.headers.items()), method="POST"
    )
    try:
        if verify is None:
            # The client's own HTTP session: its verify (AWS_CA_BUNDLE, the profile's ca_bundle,
            # --no-verify-ssl) and proxies, exactly as for the control-API calls.
            response = client._endpoint.http_session.send(prepared)
            if response.status_code >= 300:
                raise ClientError(_describe_error(url, response.status_code, response.content))
            answer = json.loads(response.content or b"{}")
        else:
            context = _ssl_context(verify) if url.startswith("https:") else None
            with urllib.request.urlopen(http_request, timeout=timeout, context=context) as reply:
                answer = json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise ClientError(_describe_error(url, exc.code, exc.read())) from exc
    except (OSError, ValueError, BotoCoreError) as exc:
        raise ClientError(f"cannot reach {url}: {exc}") from exc
    try:
        return InstanceCredentials(
            access_key_id=str(answer["accessKeyId"]),
            secret_access_key=str(answer["secretAccessKey"]),
            iam_user_arn=str(answer["iamUserArn"]),
            spec_signer_certificate=(
                str(answer["specSignerCertificate"])
                if answer.get("specSignerCertificate")
                else None
            ),
        )
    except (KeyError, TypeError) as exc:
        raise ClientError(
            f"{url} answered without accessKeyId, secretAccessKey and iamUserArn: {answer!r}"
        ) from exc


def _ssl_context(verify: bool | str | None) -> ssl.SSLContext:
    """An SSL context for urllib from a botocore-style ``verify``."""
    if verify is None:
        verify = os.environ.get("AWS_CA_BUNDLE") or True
    if verify is False:
        return ssl._create_unverified_context()
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return ssl.create_default_context()


def _describe_error(url: str, status: int, body: bytes) -> str:
    """``<url> answered <status> <__type>: <message>`` from an AWS JSON error body."""
    try:
        data = json.loads(body)
        code = str(data.get("__type", "")).rsplit("#", 1)[-1]
        message = str(data.get("message") or data.get("Message") or "")
    except (ValueError, AttributeError):
        code, message = "", body[:200].decode(errors="replace")
    return f"{url} answered HTTP {status} {code}: {message}".rstrip(": ")
