"""Where the CLI sends requests, with which key: resolved the aws-cli way, plus a local server.

Order, for each setting (first found wins):

- endpoint: ``--endpoint-url`` > ``AWS_ENDPOINT_URL_CODEDEPLOY`` / ``AWS_ENDPOINT_URL`` >
  ``OPENDEPLOY_ENDPOINT`` > ``endpoint_url`` of the profile in the shared config file > the local
  server's ``<data-dir>/config`` > ``http://127.0.0.1:8443`` (``opendeploy server``'s default);
- credentials: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` > the profile (``--profile``,
  ``AWS_PROFILE``) in the shared credentials/config files > the local server's
  ``<data-dir>/credentials``. When the endpoint is the local server's and no key or profile was
  chosen explicitly, its own key is used, so a default profile holding real AWS keys does not
  shadow it;
- region: ``--region`` > ``AWS_REGION``/``AWS_DEFAULT_REGION`` > the profile > the local server's
  config > ``us-east-1``;
- TLS trust: ``--no-verify-ssl`` > ``AWS_CA_BUNDLE`` > the profile's ``ca_bundle`` > the local
  server's ``ca_bundle`` (when its endpoint is used) > the system's CAs.

The data directory is ``OPENDEPLOY_DATA_DIR`` or the server's default (``default_data_dir()`` in
``opendeploy.server``, not imported here because it loads the whole server). Every choice keeps a
human-readable *source*, so errors can say which URL and which key from which file were used.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import platformdirs
from botocore.config import Config

from opendeploy.errors import OpenDeployError

__all__ = [
    "DATA_DIR",
    "DEFAULT_ENDPOINT",
    "Connection",
    "ConnectionOptions",
    "CredentialsNotFoundError",
    "LocalServer",
    "local_data_dir",
    "new_session",
    "resolve_connection",
]

#: The service models, in botocore's ``<service>/<api-version>/service-2.json`` layout.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
#: Where ``opendeploy server`` listens unless told otherwise.
DEFAULT_ENDPOINT = "http://127.0.0.1:8443"

_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_CODEDEPLOY", "AWS_ENDPOINT_URL")


class CredentialsNotFoundError(OpenDeployError):
    """No credentials anywhere: not in the environment, the profile or a local server's data dir."""


@dataclass(frozen=True, kw_only=True)
class ConnectionOptions:
    """The connection flags of one command line (``None``: not given)."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    verify_ssl: bool = True
    read_timeout: float | None = None
    connect_timeout: float | None = None


@dataclass(frozen=True)
class LocalServer:
    """What ``opendeploy server`` wrote into its data directory for clients."""

    data_dir: Path
    access_key_id: str | None
    secret_access_key: str | None
    region: str | None
    endpoint_url: str | None
    #: The certificate a ``--tls`` server with a self-signed certificate names for clients.
    ca_bundle: str | None = None

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "credentials"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "config"

    @classmethod
    def read(cls, data_dir: Path) -> LocalServer:
        """Read ``credentials`` and ``config`` (missing files or keys give ``None``)."""
        credentials = _read_ini(data_dir / "credentials")
        config = _read_ini(data_dir / "config")
        return cls(
            data_dir=data_dir,
            access_key_id=credentials.get("aws_access_key_id"),
            secret_access_key=credentials.get("aws_secret_access_key"),
            region=config.get("region"),
            endpoint_url=config.get("endpoint_url"),
            ca_bundle=config.get("ca_bundle"),
        )


@dataclass(frozen=True)
class Connection:
    """A resolved connection: a botocore session plus what was chosen and where it came from."""

    session: Any  # botocore.session.Session (untyped library)
    endpoint_url: str | None
    endpoint_source: str
    region: str
    access_key_id: str
    credentials_source: str
    options: ConnectionOptions
    _explicit_credentials: tuple[str, str] | None = None
    #: The local server's CA bundle, when its endpoint is used and nothing else names one.
    _local_ca_bundle: str | None = None

    @property
    def verify(self) -> bool | str | None:
        """``verify`` for botocore: False for ``--no-verify-ssl``; otherwise None, so that botocore
        reads ``AWS_CA_BUNDLE`` and the profile's ``ca_bundle`` itself (an explicit True would
        make it ignore both), or the local server's certificate when it is that server."""
        if not self.options.verify_ssl:
            return False
        if self._local_ca_bundle and not self.session.get_config_variable("ca_bundle"):
            return self._local_ca_bundle
        return None

    @property
    def ca_bundle(self) -> str | None:
        """The CA bundle the server's certificate is checked with, if one is named anywhere."""
        verify = self.verify
        if isinstance(verify, str):
            return verify
        if verify is None:
            found = self.session.get_config_variable("ca_bundle")
            return str(found) if found else None
        return None

    def client(self, service: str = "codedeploy") -> Any:
        """A botocore client for ``service`` with these settings."""
        retries: dict[str, Any] = {}
        if not self.session.get_config_variable("max_attempts"):
            # botocore's legacy default retries a refused connection 4 times with growing sleeps;
            # a CLI should say "unreachable" within a couple of seconds.
            retries = {"mode": "standard", "total_max_attempts": 3}
        config = Config(
            retries=retries or None,
            read_timeout=self.options.read_timeout or 60,
            connect_timeout=self.options.connect_timeout or 60,
        )
        keys: dict[str, str] = {}
        if self._explicit_credentials is not None:
            keys = {
                "aws_access_key_id": self._explicit_credentials[0],
                "aws_secret_access_key": self._explicit_credentials[1],
            }
        return self.session.create_client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            verify=self.verify,
            config=config,
            **keys,
        )


def local_data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The local server's data directory: ``OPENDEPLOY_DATA_DIR`` or the server's default."""
    configured = environ.get("OPENDEPLOY_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    return platformdirs.user_data_path("opendeploy")


def new_session(profile: str | None = None) -> Any:
    """A botocore session that loads service models from :data:`DATA_DIR` before its own."""
    session = botocore.session.Session(profile=profile)
    session.get_component("data_loader").search_paths.insert(0, str(DATA_DIR))
    # OpenDeploy keys never come from an instance role; asking EC2's metadata service would only
    # add seconds of timeouts on machines that are not EC2 instances.
    session.get_component("credential_provider").remove("iam-role")
    return session


def resolve_connection(
    options: ConnectionOptions, environ: Mapping[str, str] = os.environ
) -> Connection:
    """Pick endpoint, credentials and region in the order the module docstring gives."""
    session = new_session(options.profile)
    profile = options.profile or environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE")
    profile_name = profile or "default"
    scoped = session.get_scoped_config()  # raises ProfileNotFound for an unknown --profile
    local = LocalServer.read(local_data_dir(environ))

    endpoint, endpoint_source = _resolve_endpoint(options, environ, scoped, profile_name, session)
    from_local = endpoint_source.startswith(("the local server", "the default"))
    if endpoint is None and from_local:
        endpoint = local.endpoint_url or DEFAULT_ENDPOINT

    explicit = bool(profile) or "AWS_ACCESS_KEY_ID" in environ
    explicit_keys: tuple[str, str] | None = None
    if from_local and not explicit and local.access_key_id and local.secret_access_key:
        explicit_keys = (local.access_key_id, local.secret_access_key)
        access_key_id, credentials_source = local.access_key_id, f"{local.credentials_path}"
    else:
        credentials = session.get_credentials()
        if credentials is not None:
            access_key_id = credentials.access_key
            credentials_source = _describe_credentials(
                credentials.method, profile_name, session, environ
            )
        elif local.access_key_id and local.secret_access_key:
            explicit_keys = (local.access_key_id, local.secret_access_key)
            access_key_id, credentials_source = local.access_key_id, f"{local.credentials_path}"
        else:
            raise CredentialsNotFoundError(
                "Unable to locate credentials: no AWS_ACCESS_KEY_ID, no profile "
                f"'{profile_name}' with keys in the shared credentials/config files, and no "
                f"local server credentials at {local.credentials_path}. Start a server with "
                "`opendeploy server` (it writes that file), or set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY."
            )

    region = options.region or session.get_config_variable("region") or local.region or "us-east-1"
    return Connection(
        session=session,
        endpoint_url=endpoint,
        endpoint_source=endpoint_source,
        region=region,
        access_key_id=access_key_id,
        credentials_source=credentials_source,
        options=options,
        _explicit_credentials=explicit_keys,
        _local_ca_bundle=local.ca_bundle if from_local else None,
    )


def _resolve_endpoint(
    options: ConnectionOptions,
    environ: Mapping[str, str],
    scoped: Mapping[str, Any],
    profile_name: str,
    session: Any,
) -> tuple[str | None, str]:
    """(endpoint URL or None to let botocore resolve it, where it came from)."""
    if options.endpoint_url:
        return options.endpoint_url, "--endpoint-url"
    ignore_configured = environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true"
    if not ignore_configured:
        for name in _ENDPOINT_VARIABLES:
            if environ.get(name):
                return environ[name], name
    if environ.get("OPENDEPLOY_ENDPOINT"):
        return environ["OPENDEPLOY_ENDPOINT"], "OPENDEPLOY_ENDPOINT"
    if not ignore_configured:
        config_file = session.get_config_variable("config_file")
        if scoped.get("endpoint_url"):
            return str(scoped["endpoint_url"]), f"profile '{profile_name}' in {config_file}"
        if scoped.get("services"):
            # A `services` section may set a codedeploy endpoint; botocore resolves it itself.
            return None, f"the services section of profile '{profile_name}' in {config_file}"
    data_dir = local_data_dir(environ)
    if (data_dir / "config").is_file():
        return None, f"the local server's {data_dir / 'config'}"
    return None, "the default endpoint of `opendeploy server`"


def _describe_credentials(
    method: str, profile_name: str, session: Any, environ: Mapping[str, str]
) -> str:
    if method == "env":
        return "the environment (AWS_ACCESS_KEY_ID)"
    if method == "shared-credentials-file":
        path = session.get_config_variable("credentials_file")
        return f"profile '{profile_name}' in {path}"
    if method == "config-file":
        path = session.get_config_variable("config_file")
        return f"profile '{profile_name}' in {path}"
    return f"botocore's '{method}' provider (profile '{profile_name}')"


def _read_ini(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except (OSError, configparser.Error):
        return {}
    return dict(parser["default"]) if parser.has_section("default") else {}
