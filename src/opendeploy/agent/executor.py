"""One lifecycle event of one deployment on this host: DownloadBundle, Install, or a hook event.

The server-driven agent sends one host command per event, and ``opendeploy local`` runs the
events in a row; both call :func:`execute_event`. All state between events lives on disk under
the deployment root (the unpacked archive, the cleanup file, the ``_most_recent_install`` and
``_last_successful_install`` records), so a fresh process can run the next event.

Where we differ from the official agent, on purpose:

- DownloadBundle deletes ``bundle.tar`` once it is unpacked, and a local file is unpacked where
  it lies (no symlink, no copy): one copy of each revision on disk, not two (issue #64).
- A hook that fails while running the *previous* revision's scripts (ApplicationStop,
  BeforeBlockTraffic, AfterBlockTraffic) says so, and names both ways past it: the
  ``ignoreApplicationStopFailures`` option (``--ignore-application-stop-failures``) and the
  ``_last_successful_install`` file to delete (issues #273, #276).
- Hook events find the AppSpec file with the same fallback as Install (``AppSpecFilename`` →
  ``appspec.yaml`` → ``appspec.yml``); the official hook executor skips the fallback.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opendeploy.agent.config import (
    AgentConfig,
    OnPremisesConfig,
    Reloadable,
    load_on_premises_config,
    load_shared_credentials,
)
from opendeploy.agent.deployment_root import DeploymentDir, DeploymentRoot
from opendeploy.agent.hooks import HookSettings, hook_environment, run_scripts
from opendeploy.agent.installer import install
from opendeploy.agent.script_log import ScriptLog
from opendeploy.agent.spec import DeploymentSpec, LocalRevision
from opendeploy.appspec.model import AppSpec
from opendeploy.appspec.parse import declared_os, find_appspec, parse_appspec, read_appspec_text
from opendeploy.appspec.schema import SUPPORTED_OSES, check_host_os
from opendeploy.domain.lifecycle import (
    LOCAL_DEFAULT_ORDER,
    PREVIOUS_REVISION_EVENTS,
    LifecycleEvent,
)
from opendeploy.domain.status import AGENT_ERROR_CODE_NUMBERS, LifecycleErrorCode
from opendeploy.errors import AgentError, OpenDeployError, ScriptError, UnsafeArchiveError
from opendeploy.revisions.archive import ExtractLimits, unpack_bundle
from opendeploy.revisions.sources import SourceSettings, source_for_revision
from opendeploy.revisions.sources.local import check_local_location, resolve_local_location
from opendeploy.revisions.sources.s3 import S3Credentials

__all__ = [
    "DEFAULT_LIFECYCLE_EVENTS",
    "EventResult",
    "EventStatus",
    "deployment_root",
    "execute_event",
    "is_noop",
    "refuse_foreign_os",
]

OnOutput = Callable[[str, str], None]

E = LifecycleEvent

#: The events every deployment knows (``codedeploy-local``'s default list); a custom event in
#: ``AllPossibleLifecycleEvents`` outside it must have scripts in the appspec.
DEFAULT_LIFECYCLE_EVENTS: tuple[str, ...] = LOCAL_DEFAULT_ORDER


class EventStatus(enum.StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    #: Nothing to do: no scripts for the event, or no previous revision (a no-op command).
    SKIPPED = "Skipped"


@dataclass(frozen=True, kw_only=True)
class EventResult:
    """The outcome of one event, with what the server's diagnostics payload needs.

    ``ignored_failure`` is true when a previous-revision hook failed and the failure was
    ignored on request: ``status`` is then Succeeded and the error fields describe the failure.
    """

    event: str
    status: EventStatus
    error_code: LifecycleErrorCode = LifecycleErrorCode.SUCCESS
    script_name: str = ""
    message: str = ""
    log_tail: str = ""
    duration: float = 0.0
    ignored_failure: bool = False
    #: The deployment dir whose scripts ran (None: no hook scripts ran).
    revision_dir: Path | None = None

    @property
    def failed(self) -> bool:
        return self.status is EventStatus.FAILED

    def diagnostics(self) -> dict[str, Any]:
        """The official diagnostics payload: ``{"error_code", "script_name", "message", "log"}``.

        On success the log is empty and the message is ``Succeeded: `` (``Succeeded:
        CompletedNoopCommand`` for a no-op), as the official agent reports it.
        """
        if self.status is EventStatus.FAILED:
            return {
                "error_code": AGENT_ERROR_CODE_NUMBERS[self.error_code],
                "script_name": self.script_name,
                "message": self.message,
                "log": self.log_tail,
            }
        note = "CompletedNoopCommand" if self.status is EventStatus.SKIPPED else ""
        return {"error_code": 0, "script_name": "", "message": f"Succeeded: {note}", "log": ""}


def deployment_root(config: AgentConfig) -> DeploymentRoot:
    """The :class:`DeploymentRoot` the configuration points at."""
    return DeploymentRoot(
        config.root_dir,
        program_name=config.program_name,
        ongoing_deployment_tracking=config.ongoing_deployment_tracking,
    )


def execute_event(
    spec: DeploymentSpec,
    event: str,
    *,
    config: AgentConfig,
    on_output: OnOutput | None = None,
    ignore_application_stop_failures: bool = False,
) -> EventResult:
    """Run lifecycle ``event`` of the deployment ``spec`` and report how it went.

    Never raises for a deployment failure: every error becomes a Failed result with the
    official error code (ScriptFailed, ScriptTimedOut, … for hooks; UnknownError otherwise).
    ``on_output(stream, line)`` receives each hook output line as it arrives.
    ``ignore_application_stop_failures`` turns a failure of ApplicationStop, BeforeBlockTraffic
    or AfterBlockTraffic into a success with ``ignored_failure`` set.
    """
    started = time.monotonic()
    root = deployment_root(config)

    def done(status: EventStatus, **fields: Any) -> EventResult:
        return EventResult(
            event=event, status=status, duration=time.monotonic() - started, **fields
        )

    try:
        deployment = root.deployment(spec.deployment_group_id, spec.deployment_id)
        try:
            root.make_deployment_dir(spec.deployment_group_id, spec.deployment_id)
        except OSError as exc:
            raise AgentError(
                f"Error creating deployment root directory {deployment.path}: {exc.strerror or exc}"
            ) from exc
        if event == E.DOWNLOAD_BUNDLE:
            _download_bundle(spec, root, deployment, config)
            return done(EventStatus.SUCCEEDED)
        if event == E.INSTALL:
            _install(spec, root, deployment, config)
            return done(EventStatus.SUCCEEDED)
        return _hook_event(
            spec,
            event,
            root,
            deployment,
            config,
            on_output=on_output,
            ignore_failure=ignore_application_stop_failures,
            done=done,
        )
    except ScriptError as exc:  # raised outside a hook run: still report it faithfully
        return done(
            EventStatus.FAILED,
            error_code=_error_code(exc.code),
            script_name=exc.script,
            message=exc.message,
            log_tail=exc.log_tail,
        )
    except Exception as exc:
        # As the official agent: whatever goes wrong outside a script is an UnknownError whose
        # message is the exception's, so the server (or the local CLI) can show it. An OS error
        # without a path (a full disk while writing) says at least where the event was working.
        message = _describe(exc)
        if isinstance(exc, OSError) and not exc.filename:
            message += f" (during {event} in {root.root})"
        return done(
            EventStatus.FAILED, error_code=LifecycleErrorCode.UNKNOWN_ERROR, message=message
        )


def is_noop(spec: DeploymentSpec, event: str, config: AgentConfig) -> bool:
    """Whether ``event`` has nothing to do on this host (the official ``IsCommandNoop`` rule).

    DownloadBundle and Install always do something; a hook event is a no-op when the revision
    it would take its scripts from is unknown (first deployment) or lists no scripts for it.
    When the appspec cannot be read the answer is False, so running the event reports why.
    """
    if event in (E.DOWNLOAD_BUNDLE, E.INSTALL):
        return False
    root = deployment_root(config)
    try:
        deployment = root.deployment(spec.deployment_group_id, spec.deployment_id)
        revision = _hook_revision(spec, event, root, deployment)
        if revision is None:
            return True
        appspec = _load_appspec(revision.archive, spec, config)
    except (OpenDeployError, OSError):
        return False
    return not appspec.scripts_for(event)


# -- DownloadBundle ------------------------------------------------------------------------------


def _download_bundle(
    spec: DeploymentSpec, root: DeploymentRoot, deployment: DeploymentDir, config: AgentConfig
) -> None:
    root.cleanup_old_deployments(spec.deployment_group_id, spec.deployment_id, config.max_revisions)
    source = _fetch_bundle(spec, deployment, config)
    try:
        unpack_bundle(source, spec.bundle_type, deployment.archive, limits=_extract_limits(config))
    except UnsafeArchiveError as exc:
        raise UnsafeArchiveError(_name_config_keys(str(exc))) from exc
    finally:
        # No retained copy of the archive: the unpacked revision is all later events need.
        deployment.bundle.unlink(missing_ok=True)
    refuse_foreign_os(deployment.archive, spec.appspec_filename)
    root.instructions_dir.mkdir(parents=True, exist_ok=True)
    root.record_most_recent(spec.deployment_group_id, deployment)


def _fetch_bundle(spec: DeploymentSpec, deployment: DeploymentDir, config: AgentConfig) -> Path:
    """Where the bundle can be read: a local file or directory in place, else a download.

    S3 and GitHub revisions are downloaded to ``bundle.tar`` (the official name, whatever the
    type) and checked (ETag/MD5, resolved commit) before anything is unpacked.
    """
    revision = spec.revision
    if isinstance(revision, LocalRevision):
        path = resolve_local_location(revision.location)
        check_local_location(path, revision.bundle_type)
        return path
    source = source_for_revision(
        spec.to_payload()["Revision"],
        settings=source_settings(config),
        github_access_token=spec.github_access_token,
    )
    try:
        source.fetch(deployment.bundle)
    except OSError as exc:
        # A full disk while writing the download: say where (the error itself has no path).
        raise AgentError(
            f"cannot download the bundle to {deployment.bundle}: {_describe(exc)}"
        ) from exc
    return deployment.bundle


_ON_PREMISES: dict[Path, Reloadable[OnPremisesConfig]] = {}

#: How long DownloadBundle tries a failed S3 download again, resuming it (the bundle store may
#: be the OpenDeploy server, restarting): well inside the event timeouts (AWS: an hour).
DOWNLOAD_RETRY_SECONDS = 300.0


def source_settings(config: AgentConfig) -> SourceSettings:
    """How this host reaches bundle stores, from the agent configuration.

    S3 goes to ``s3_endpoint_override`` when set, otherwise to the OpenDeploy server named by
    ``deploy_control_endpoint`` (its built-in bundle store speaks the S3 subset agents use), else
    AWS. The instance's own keys from the on-premises file sign the download; that file is
    re-read whenever it changes, so rotated credentials apply without a restart.
    """
    credentials: S3Credentials | None = None
    region = "us-east-1"
    path = config.on_premises_config_file
    if path.is_file():
        reloadable = _ON_PREMISES.setdefault(path, Reloadable(path, load_on_premises_config))
        onprem = reloadable.get()
        region = onprem.region
        if onprem.aws_access_key_id and onprem.aws_secret_access_key:
            credentials = S3Credentials(onprem.aws_access_key_id, onprem.aws_secret_access_key)
        elif onprem.aws_credentials_file is not None:
            shared = load_shared_credentials(onprem.aws_credentials_file)
            credentials = S3Credentials(
                shared.aws_access_key_id, shared.aws_secret_access_key, shared.aws_session_token
            )
    return SourceSettings(
        s3_endpoint_url=config.s3_endpoint_override or config.deploy_control_endpoint,
        s3_region=region,
        s3_proxy=config.proxy_uri,
        s3_credentials=credentials,
        s3_retry_seconds=DOWNLOAD_RETRY_SECONDS,
        git_base_url=config.git_base_url,
    )


def _extract_limits(config: AgentConfig) -> ExtractLimits:
    """The configured bundle limits; the archive module's defaults where none is set."""
    limits = _DEFAULT_LIMITS
    if config.bundle_max_total_bytes is not None:
        limits = dataclasses.replace(limits, max_total_bytes=config.bundle_max_total_bytes)
    if config.bundle_max_entries is not None:
        limits = dataclasses.replace(limits, max_entries=config.bundle_max_entries)
    if config.bundle_max_compression_ratio is not None:
        ratio = config.bundle_max_compression_ratio
        limits = dataclasses.replace(limits, max_compression_ratio=ratio)
    return limits


_DEFAULT_LIMITS = ExtractLimits()

# An agent's operator raises a limit in codedeployagent.yml, not in code: name the key there.
_LIMIT_KEYS = {
    "ExtractLimits.max_total_bytes": "bundle_max_total_bytes",
    "ExtractLimits.max_entries": "bundle_max_entries",
    "ExtractLimits.max_compression_ratio": "bundle_max_compression_ratio",
}


def _name_config_keys(message: str) -> str:
    for field, key in _LIMIT_KEYS.items():
        message = message.replace(f"({field})", f"({key} in the agent configuration)")
    return message


def refuse_foreign_os(archive: Path, appspec_filename: str | None) -> None:
    """Fail at once when the revision's appspec is for another OS (``os: windows``).

    Checked as soon as the revision is on disk, before any of its scripts or files are touched.
    Only the ``os`` field is judged here, whatever else the file holds (a Windows appspec may
    be invalid for Linux in other ways too); any other problem of the appspec is reported by
    the event that uses it (Install), as the official agent does.
    """
    try:
        path = find_appspec(archive, appspec_filename)
    except OpenDeployError:
        return
    os_name = declared_os(path)
    if isinstance(os_name, str) and os_name in SUPPORTED_OSES:
        check_host_os(os_name)


# -- Install -------------------------------------------------------------------------------------


def _install(
    spec: DeploymentSpec, root: DeploymentRoot, deployment: DeploymentDir, config: AgentConfig
) -> None:
    appspec = _load_appspec(deployment.archive, spec, config)
    install(
        appspec,
        archive_dir=deployment.archive,
        instructions_dir=root.instructions_dir,
        deployment_group_id=spec.deployment_group_id,
        # The appspec's own file_exists_behavior wins over the deployment's, as officially.
        file_exists_behavior=appspec.file_exists_behavior or spec.file_exists_behavior,
        protected=(root.root,),
    )
    # Written at the end of Install, not of the deployment: the official agent's rule, which
    # makes this revision's ApplicationStop the one the next deployment runs.
    root.record_last_successful(spec.deployment_group_id, deployment)


# -- hook events ---------------------------------------------------------------------------------

_LAST_SUCCESSFUL = "last successful"
_MOST_RECENT = "most recent"
_CURRENT = "current"

# Which revision's scripts a hook runs when the current revision is not downloaded yet
# (HookExecutor's mapping): (normal deployment, blue/green rollback).
_REVISION_FOR_EVENT: dict[str, tuple[str, str]] = {
    E.BEFORE_BLOCK_TRAFFIC: (_LAST_SUCCESSFUL, _MOST_RECENT),
    E.AFTER_BLOCK_TRAFFIC: (_LAST_SUCCESSFUL, _MOST_RECENT),
    E.APPLICATION_STOP: (_LAST_SUCCESSFUL, _LAST_SUCCESSFUL),
    E.BEFORE_ALLOW_TRAFFIC: (_CURRENT, _LAST_SUCCESSFUL),
    E.AFTER_ALLOW_TRAFFIC: (_CURRENT, _LAST_SUCCESSFUL),
}


def _revision_source(spec: DeploymentSpec, event: str) -> str:
    normal, rollback = _REVISION_FOR_EVENT.get(event, (_CURRENT, _CURRENT))
    return rollback if spec.is_blue_green_rollback else normal


def _hook_revision(
    spec: DeploymentSpec, event: str, root: DeploymentRoot, deployment: DeploymentDir
) -> DeploymentDir | None:
    """The deployment whose scripts ``event`` runs; None when there is no such revision."""
    if deployment.archive.exists():
        return deployment
    source = _revision_source(spec, event)
    if source == _CURRENT:
        return deployment
    group = spec.deployment_group_id
    record = root.last_successful(group) if source == _LAST_SUCCESSFUL else root.most_recent(group)
    return None if record is None else DeploymentDir(record)


def _load_appspec(archive: Path, spec: DeploymentSpec, config: AgentConfig) -> AppSpec:
    path = find_appspec(archive, spec.appspec_filename)
    allowed = spec.all_possible_lifecycle_events
    cap = config.hook_event_timeout_cap
    text = read_appspec_text(path)
    appspec = _parse_appspec(text, path.name, cap, allowed)
    check_host_os(appspec.os)
    if allowed is not None:
        missing = [
            e for e in allowed if e not in DEFAULT_LIFECYCLE_EVENTS and e not in appspec.hooks
        ]
        if missing:
            raise AgentError(
                "You specified a lifecycle event which is not a default one and doesn't exist "
                f"in your {spec.appspec_filename} file: {','.join(missing)}"
            )
    return appspec


@functools.lru_cache(maxsize=32)
def _parse_appspec(
    text: str, source: str, max_event_timeout: int | None, allowed: tuple[str, ...] | None
) -> AppSpec:
    """``parse_appspec``, remembered by its inputs: the agent reads one revision's appspec for
    every command of a deployment (the no-op check, then the event itself), and parsing the
    YAML in pure Python cost more than the rest of a hook command. The result is a frozen value;
    a parse error is not remembered, so it is raised afresh each time."""
    return parse_appspec(
        text, source=source, max_event_timeout=max_event_timeout, allowed_events=allowed
    )


def _hook_event(
    spec: DeploymentSpec,
    event: str,
    root: DeploymentRoot,
    deployment: DeploymentDir,
    config: AgentConfig,
    *,
    on_output: OnOutput | None,
    ignore_failure: bool,
    done: Callable[..., EventResult],
) -> EventResult:
    revision = _hook_revision(spec, event, root, deployment)
    if revision is None:
        return done(EventStatus.SKIPPED, message="no previous revision on this host")
    from_previous = revision.path != deployment.path
    ignored = ignore_failure and event in PREVIOUS_REVISION_EVENTS

    def failed(
        code: LifecycleErrorCode, message: str, script: str = "", tail: str = ""
    ) -> EventResult:
        if from_previous:
            message += _previous_revision_hint(spec, event, root, revision)
        return done(
            EventStatus.SUCCEEDED if ignored else EventStatus.FAILED,
            error_code=code,
            script_name=script,
            message=message,
            log_tail=tail,
            ignored_failure=ignored,
            revision_dir=revision.path,
        )

    try:
        appspec = _load_appspec(revision.archive, spec, config)
    except OpenDeployError as exc:
        if not from_previous:
            raise
        # e.g. the earlier revision's directory was cleaned by hand: the same way out applies.
        return failed(LifecycleErrorCode.UNKNOWN_ERROR, str(exc))
    scripts = appspec.scripts_for(event)
    if not scripts:
        return done(EventStatus.SKIPPED, revision_dir=revision.path)
    script_log = ScriptLog(
        deployment.scripts_log,
        deployments_log=root.deployments_log if config.enable_deployments_log else None,
        deployment_id=spec.deployment_id,
    )
    env = hook_environment(
        event=event,
        deployment_id=spec.deployment_id,
        application_name=spec.application_name,
        deployment_group_name=spec.deployment_group_name,
        deployment_group_id=spec.deployment_group_id,
        revision_env=spec.revision_env(),
    )
    settings = HookSettings(
        kill_grace_seconds=config.hook_kill_grace_seconds,
        outputs_left_open=config.hook_outputs_left_open,
        output_close_grace_seconds=config.hook_output_close_grace_seconds,
        login_environment=config.hook_login_environment,
    )
    try:
        run_scripts(
            scripts,
            event=event,
            archive_dir=revision.archive,
            env=env,
            script_log=script_log,
            on_output=on_output,
            settings=settings,
        )
    except ScriptError as exc:
        return failed(_error_code(exc.code), exc.message, exc.script, exc.log_tail)
    return done(EventStatus.SUCCEEDED, revision_dir=revision.path)


def _previous_revision_hint(
    spec: DeploymentSpec, event: str, root: DeploymentRoot, revision: DeploymentDir
) -> str:
    """How to get past a broken script of an earlier revision (fixing the new bundle can't)."""
    source = _revision_source(spec, event)
    record = (
        root.most_recent_file(spec.deployment_group_id)
        if source == _MOST_RECENT
        else root.last_successful_file(spec.deployment_group_id)
    )
    return (
        f". This {event} script comes from the {source} revision on this host "
        f"({revision.archive}), not from the revision being deployed, so fixing it in the new "
        "bundle does not help. To get past it, deploy with the ignoreApplicationStopFailures "
        "option (opendeploy local --ignore-application-stop-failures), or delete "
        f"{record} so that no earlier revision's scripts run"
    )


def _error_code(code: str) -> LifecycleErrorCode:
    try:
        return LifecycleErrorCode(code)
    except ValueError:
        return LifecycleErrorCode.UNKNOWN_ERROR


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__
