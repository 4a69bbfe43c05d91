"""The agent's settings: ``codedeployagent.yml`` and ``codedeploy.onpremises.yml``, official keys.

An existing ``codedeployagent.yml`` works unchanged: the same keys (``root_dir``, ``log_dir``,
``max_revisions``, ``verbose``, ``wait_between_runs``, ``proxy_uri``, …) with the official
agent's *code* defaults, and ``:key:`` (the Ruby symbol form of the shipped file) is the same as
``key:``. OpenDeploy's own settings sit beside them under clearly distinct names (``hook_…``,
``bundle_…``) so the file stays readable by both agents.

Loading is cheap and side-effect free, so the server-driven agent can re-read the files when
they change: :class:`Reloadable` re-loads a file only when its ``stat`` (mtime, size, inode)
changed, which is how rotated on-premises credentials are picked up without a restart (the
official agent needs one, issue #354).

Default configuration: :func:`resolve_agent_config_path` returns the official
``/etc/codedeploy-agent/conf/codedeployagent.yml`` when it exists (as ``codedeploy-local``
does), else ``None``. With no file, root gets the official agent's places
(``/opt/codedeploy-agent/deployment-root``, ``/var/log/aws/codedeploy-agent``): root's home is
private (mode 0700), so a deployment root under it would be out of reach of every ``runas``
user. Any other user gets the per-user data directory (``platformdirs``:
``~/.local/share/opendeploy/deployment-root``), so ``opendeploy local`` works without writing
to ``/opt``.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import platformdirs
import yaml

from opendeploy.errors import AgentConfigError

__all__ = [
    "DEFAULT_AGENT_CONFIG_PATH",
    "DEFAULT_ON_PREMISES_CONFIG_PATH",
    "OFFICIAL_LOG_DIR",
    "OFFICIAL_ROOT_DIR",
    "AgentConfig",
    "OnPremisesConfig",
    "Reloadable",
    "SharedCredentials",
    "default_agent_config",
    "load_agent_config",
    "load_on_premises_config",
    "load_shared_credentials",
    "resolve_agent_config_path",
]

#: Where the official agent's package installs its configuration file.
DEFAULT_AGENT_CONFIG_PATH = Path("/etc/codedeploy-agent/conf/codedeployagent.yml")
#: Where the official agent looks for the on-premises identity and credentials.
DEFAULT_ON_PREMISES_CONFIG_PATH = Path("/etc/codedeploy-agent/conf/codedeploy.onpremises.yml")

_OUTPUTS_LEFT_OPEN_POLICIES = ("warn", "fail")


#: The official agent's deployment root and log directory (its shipped configuration).
OFFICIAL_ROOT_DIR = Path("/opt/codedeploy-agent/deployment-root")
OFFICIAL_LOG_DIR = Path("/var/log/aws/codedeploy-agent")


def _user_root_dir() -> Path:
    if os.geteuid() == 0:
        return OFFICIAL_ROOT_DIR
    return Path(platformdirs.user_data_dir("opendeploy")) / "deployment-root"


def _user_log_dir() -> Path:
    if os.geteuid() == 0:
        return OFFICIAL_LOG_DIR
    return Path(platformdirs.user_log_dir("opendeploy"))


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Settings of the host agent and of ``opendeploy local``.

    The first group of fields are the official agent's keys with its code defaults; the second
    are OpenDeploy's additions (the official agent hard-codes these or has no such limit).
    ``None`` for an extract limit means "the archive module's default".
    """

    # -- official keys (lib/instance_agent/config.rb defaults) --------------------------------
    root_dir: Path = dataclasses.field(default_factory=_user_root_dir)
    log_dir: Path = dataclasses.field(default_factory=_user_log_dir)
    pid_dir: Path | None = None
    program_name: str = "codedeploy-agent"
    verbose: bool = False
    wait_between_runs: float = 30
    max_revisions: int = 5
    proxy_uri: str | None = None
    log_aws_wire: bool = False
    disable_imds_v1: bool = False
    on_premises_config_file: Path = DEFAULT_ON_PREMISES_CONFIG_PATH
    enable_auth_policy: bool = False
    use_fips_mode: bool = False
    deploy_control_endpoint: str | None = None
    s3_endpoint_override: str | None = None
    http_read_timeout: float = 80
    kill_agent_max_wait_time_seconds: float = 7200
    enable_deployments_log: bool = True
    ongoing_deployment_tracking: str = "ongoing-deployment"
    children: int = 1
    wait_between_spawning_children: float = 1
    wait_after_throttle_error: float = 60
    wait_after_connection_problem: float = 5
    max_runs_per_worker: int = 0
    user: str | None = None
    group: str | None = None
    codedeploy_test_profile: str = "prod"
    # -- OpenDeploy additions ---------------------------------------------------------------
    #: Cap on the sum of script timeouts of one lifecycle event (AWS's 3600 s; ``None``: no cap).
    hook_event_timeout_cap: int | None = 3600
    #: Seconds between TERM and KILL to a timed-out hook's process group.
    hook_kill_grace_seconds: float = 5.0
    #: A hook exited but a background child keeps stdout/stderr open: "warn" or "fail".
    hook_outputs_left_open: Literal["warn", "fail"] = "warn"
    #: Seconds to wait for a hook's pipes to close after it exited.
    hook_output_close_grace_seconds: float = 1.0
    #: Run ``runas`` hooks as ``su - <user>`` would: through the user's login shell (``-l``,
    #: reading /etc/profile and ~/.profile) in a fresh environment (HOME, USER, LOGNAME, SHELL,
    #: PATH, TERM, locale) plus the deployment variables. ``false``: the official agent's
    #: ``su <user> -c`` environment (the agent's own, with the user's HOME/USER/LOGNAME/SHELL).
    hook_login_environment: bool = True
    #: Unpacked size limit of a bundle in bytes.
    bundle_max_total_bytes: int | None = None
    #: Entry-count limit of a bundle archive.
    bundle_max_entries: int | None = None
    #: Largest accepted ratio of unpacked to packed size (zip-bomb guard).
    bundle_max_compression_ratio: float | None = None
    #: The git server that GitHub revisions (``<account>/<repository>``) are fetched from.
    git_base_url: str = "https://github.com"
    #: The file this configuration came from (``None``: built-in defaults).
    config_file: Path | None = None

    @property
    def deployments_log_file(self) -> Path:
        """``<root_dir>/deployment-logs/<program_name>-deployments.log`` (official name)."""
        return self.root_dir / "deployment-logs" / f"{self.program_name}-deployments.log"


# Field name -> the kind of value it takes; drives conversion and the error messages.
_PATH = "path"
_OPT_PATH = "optional path"
_STR = "string"
_OPT_STR = "optional string"
_BOOL = "boolean"
_INT = "integer"
_OPT_INT = "optional integer"
_NUM = "number"
_OPT_NUM = "optional number"

_KINDS: dict[str, str] = {
    "root_dir": _PATH,
    "log_dir": _PATH,
    "pid_dir": _OPT_PATH,
    "program_name": _STR,
    "verbose": _BOOL,
    "wait_between_runs": _NUM,
    "max_revisions": _INT,
    "proxy_uri": _OPT_STR,
    "log_aws_wire": _BOOL,
    "disable_imds_v1": _BOOL,
    "on_premises_config_file": _PATH,
    "enable_auth_policy": _BOOL,
    "use_fips_mode": _BOOL,
    "deploy_control_endpoint": _OPT_STR,
    "s3_endpoint_override": _OPT_STR,
    "http_read_timeout": _NUM,
    "kill_agent_max_wait_time_seconds": _NUM,
    "enable_deployments_log": _BOOL,
    "ongoing_deployment_tracking": _STR,
    "children": _INT,
    "wait_between_spawning_children": _NUM,
    "wait_after_throttle_error": _NUM,
    "wait_after_connection_problem": _NUM,
    "max_runs_per_worker": _INT,
    "user": _OPT_STR,
    "group": _OPT_STR,
    "codedeploy_test_profile": _STR,
    "hook_event_timeout_cap": _OPT_INT,
    "hook_kill_grace_seconds": _NUM,
    "hook_outputs_left_open": _STR,
    "hook_output_close_grace_seconds": _NUM,
    "hook_login_environment": _BOOL,
    "bundle_max_total_bytes": _OPT_INT,
    "bundle_max_entries": _OPT_INT,
    "bundle_max_compression_ratio": _OPT_NUM,
    "git_base_url": _STR,
}


def _convert(key: str, value: Any, *, base: Path) -> Any:
    """Turn one YAML value into the field's type; raise naming the key, the value and the rule."""
    kind = _KINDS[key]
    optional = kind.startswith("optional ")
    if value is None or (optional and value == ""):
        if optional:
            return None
        raise AgentConfigError(f"{key}: a {kind} is required, got nothing")
    if kind in (_PATH, _OPT_PATH):
        if not isinstance(value, str) or not value.strip():
            raise AgentConfigError(f"{key}: {value!r} is not a path")
        path = Path(os.path.expanduser(value.strip()))
        return path if path.is_absolute() else (base / path)
    if kind in (_STR, _OPT_STR):
        if not isinstance(value, str):
            raise AgentConfigError(f"{key}: {value!r} is not a string")
        return value
    if kind == _BOOL:
        if not isinstance(value, bool):
            raise AgentConfigError(f"{key}: {value!r} is not true or false")
        return value
    if kind in (_INT, _OPT_INT):
        if isinstance(value, bool) or not isinstance(value, int):
            raise AgentConfigError(f"{key}: {value!r} is not an integer")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AgentConfigError(f"{key}: {value!r} is not a number")
    return value


def _validate(config: AgentConfig) -> None:
    """The official agent's checks on values, with its wording first where it has one."""
    if config.max_revisions < 1:
        raise AgentConfigError(
            f"Invalid configuration :max_revision={config.max_revisions}"
            " (max_revisions must be an integer >= 1)"
        )
    if config.children != 1:
        raise AgentConfigError(f"Invalid number of children {config.children} (must be 1)")
    if config.max_runs_per_worker < 0:
        raise AgentConfigError(
            f"Invalid max_runs_per_worker {config.max_runs_per_worker} (must be >= 0)"
        )
    if config.hook_outputs_left_open not in _OUTPUTS_LEFT_OPEN_POLICIES:
        raise AgentConfigError(
            f"hook_outputs_left_open: {config.hook_outputs_left_open!r} is not one of "
            + ", ".join(_OUTPUTS_LEFT_OPEN_POLICIES)
        )
    if config.hook_event_timeout_cap is not None and config.hook_event_timeout_cap < 1:
        raise AgentConfigError(
            f"hook_event_timeout_cap: {config.hook_event_timeout_cap} must be >= 1 (or empty)"
        )
    for name in ("program_name", "ongoing_deployment_tracking"):
        value = getattr(config, name)
        if not value or "/" in value or value in (".", ".."):
            raise AgentConfigError(f"{name}: {value!r} must be a plain file name")
    for name in ("wait_between_runs", "http_read_timeout", "hook_kill_grace_seconds"):
        if getattr(config, name) < 0:
            raise AgentConfigError(f"{name}: {getattr(config, name)} must be >= 0")


def agent_config_from_mapping(
    data: Mapping[Any, Any], *, base: Path | None = None, config_file: Path | None = None
) -> AgentConfig:
    """Build an :class:`AgentConfig` from the loaded YAML mapping.

    Leading colons are stripped from keys (``:root_dir:`` = ``root_dir:``); unknown keys are
    ignored as the official agent does. Relative paths are taken relative to ``base``.
    """
    base = base if base is not None else Path.cwd()
    values: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).lstrip(":")
        # Unknown keys (its unused legacy ones too): the official agent keeps, never reads them.
        if key in _KINDS:
            values[key] = _convert(key, value, base=base)
    config = AgentConfig(config_file=config_file, **values)
    _validate(config)
    return config


def load_agent_config(path: Path) -> AgentConfig:
    """Load ``codedeployagent.yml`` at ``path`` (official error wording).

    An empty file gives the defaults. Relative paths in the file are relative to the current
    directory, as with the official agent.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentConfigError(f"The config file {path} does not exist or is not readable") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentConfigError(
            "An error occurred loading the CodeDeploy agent config file at "
            f"{path}. Error message: {exc}"
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AgentConfigError(
            "An error occurred loading the CodeDeploy agent config file at "
            f"{path}. Error message: the file must hold a mapping of keys to values, "
            f"not a {type(data).__name__}"
        )
    try:
        return agent_config_from_mapping(data, config_file=path.absolute())
    except AgentConfigError as exc:
        raise AgentConfigError(
            "An error occurred loading the CodeDeploy agent config file at "
            f"{path}. Error message: {exc}"
        ) from exc


def resolve_agent_config_path(path: Path | None = None) -> Path | None:
    """The configuration file to use: ``path`` if given, else the official one if it exists."""
    if path is not None:
        return Path(path)
    if DEFAULT_AGENT_CONFIG_PATH.is_file():
        return DEFAULT_AGENT_CONFIG_PATH
    return None


def default_agent_config(path: Path | None = None) -> AgentConfig:
    """Load ``path`` or the official file (:func:`resolve_agent_config_path`), else defaults."""
    resolved = resolve_agent_config_path(path)
    return AgentConfig() if resolved is None else load_agent_config(resolved)


# -- on-premises identity ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OnPremisesConfig:
    """``codedeploy.onpremises.yml``: an IAM user with static keys, or an IAM session.

    Exactly one of ``iam_user_arn`` (with the two keys) or ``iam_session_arn`` (with
    ``aws_credentials_file``, a shared-credentials file that rotates) is set.
    """

    region: str
    iam_user_arn: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    iam_session_arn: str | None = None
    aws_credentials_file: Path | None = None

    @property
    def host_identifier(self) -> str:
        """The instance's identity ARN (the official ``AWS_HOST_IDENTIFIER``)."""
        arn = self.iam_user_arn or self.iam_session_arn
        assert arn is not None
        return arn


_ON_PREMISES_KEYS = (
    "region",
    "iam_user_arn",
    "aws_access_key_id",
    "aws_secret_access_key",
    "iam_session_arn",
    "aws_credentials_file",
)


def load_on_premises_config(path: Path) -> OnPremisesConfig:
    """Load and check ``codedeploy.onpremises.yml`` (the official agent's error messages)."""
    path = Path(path)
    invalid = (
        "The deployment failed because the format of the following on-premises "
        f"configuration file is invalid: {path}"
    )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentConfigError(f"The config file {path} does not exist or is not readable") from exc
    except yaml.YAMLError as exc:
        raise AgentConfigError(invalid) from exc
    if not isinstance(data, dict):
        raise AgentConfigError(invalid)
    values: dict[str, str] = {}
    for raw_key, value in data.items():
        key = str(raw_key).lstrip(":")
        if key in _ON_PREMISES_KEYS and value is not None:
            if not isinstance(value, str):
                raise AgentConfigError(f"{invalid} ({key}: {value!r} is not a string)")
            values[key] = value.strip()
    if "iam_user_arn" in values and "iam_session_arn" in values:
        raise AgentConfigError(
            "On Premises config cannot contain both 'iam_user_arn' and 'iam_session_arn' keys."
        )
    required: tuple[str, ...]
    if "iam_user_arn" in values:
        required = ("region", "aws_access_key_id", "aws_secret_access_key")
        anchor = "iam_user_arn"
    elif "iam_session_arn" in values:
        required = ("region", "aws_credentials_file")
        anchor = "iam_session_arn"
    else:
        raise AgentConfigError(f"{invalid} (neither 'iam_user_arn' nor 'iam_session_arn' is set)")
    for key in required:
        if not values.get(key):
            raise AgentConfigError(f"'{key}' key is required when '{anchor}' is provided.")
    credentials_file = values.pop("aws_credentials_file", None)
    return OnPremisesConfig(
        **values,
        aws_credentials_file=None if credentials_file is None else Path(credentials_file),
    )


@dataclass(frozen=True, kw_only=True)
class SharedCredentials:
    """One profile of an AWS shared-credentials file."""

    aws_access_key_id: str
    aws_secret_access_key: str
    aws_session_token: str | None = None


def load_shared_credentials(path: Path, profile: str = "default") -> SharedCredentials:
    """Read ``profile`` from the AWS shared-credentials file at ``path``."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with Path(path).open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise AgentConfigError(f"aws_credentials_file: {path} cannot be read: {exc}") from exc
    if not parser.has_section(profile):
        raise AgentConfigError(f"aws_credentials_file: {path} has no [{profile}] profile")
    section = parser[profile]
    key_id = section.get("aws_access_key_id", "").strip()
    secret = section.get("aws_secret_access_key", "").strip()
    if not key_id or not secret:
        raise AgentConfigError(
            f"aws_credentials_file: [{profile}] in {path} needs aws_access_key_id and "
            "aws_secret_access_key"
        )
    token = section.get("aws_session_token", "").strip() or None
    return SharedCredentials(
        aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token
    )


# -- re-reading files when they change -----------------------------------------------------------

T = TypeVar("T")


class Reloadable(Generic[T]):
    """A value loaded from a file and loaded again whenever the file changes.

    ``get()`` costs one ``stat`` when nothing changed. A change is any difference in mtime,
    size, inode or device, so an atomic replace (write + rename) is seen even within the mtime
    granularity. If the new content fails to load, the error propagates and the next ``get()``
    tries again. Thread-safe.

    Example::

        credentials = Reloadable(Path("/etc/codedeploy-agent/conf/codedeploy.onpremises.yml"),
                                 load_on_premises_config)
        region = credentials.get().region
    """

    def __init__(self, path: Path, loader: Callable[[Path], T]) -> None:
        self.path = Path(path)
        self._loader = loader
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int, int] | None = None
        self._value: T | None = None

    def _current_stamp(self) -> tuple[int, int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)

    def changed(self) -> bool:
        """Whether the file differs from the one last loaded (or was never loaded)."""
        stamp = self._current_stamp()
        return stamp is None or stamp != self._stamp

    def get(self) -> T:
        """The value, re-loaded first if the file changed since the last load."""
        with self._lock:
            stamp = self._current_stamp()
            if self._value is None or stamp is None or stamp != self._stamp:
                value = self._loader(self.path)
                self._value = value
                self._stamp = stamp
                return value
            return self._value
