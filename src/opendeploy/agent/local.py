"""``opendeploy local``: deploy a revision on this host with no server, like ``codedeploy-local``.

The options, their checks and messages, the event-list rules and the deployment spec follow the
official ``codedeploy-local`` (deployment id ``d-XXXXXXXXX-local``, deployment group id
``default-local-deployment-group``, group name ``LocalFleet``, application name = the bundle
location, ``AllPossibleLifecycleEvents`` = the default events plus the given ones). The events
then run one by one through :func:`~opendeploy.agent.executor.execute_event`, the same code the
server-driven agent runs, against the same deployment root, so a local deployment can target a
real deployment group id. The deployer stops at the first failed event.

What is printed is left to a :class:`LocalReporter` (the CLI renders it for a terminal or a
pipe); the official agent's stdout lines are handed over with :meth:`LocalReporter.message`.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from opendeploy.agent.config import AgentConfig
from opendeploy.agent.deployment_root import check_path_component
from opendeploy.agent.executor import (
    DEFAULT_LIFECYCLE_EVENTS,
    EventResult,
    EventStatus,
    deployment_root,
    execute_event,
    refuse_foreign_os,
)
from opendeploy.agent.spec import DeploymentSpec, DeploymentSpecError, parse_deployment_spec
from opendeploy.domain.ids import new_local_deployment_id
from opendeploy.errors import AgentError, AppSpecError
from opendeploy.revisions.sources.local import check_local_location, resolve_local_location

__all__ = [
    "BUNDLE_TYPES",
    "DEFAULT_DEPLOYMENT_GROUP_ID",
    "DEFAULT_DEPLOYMENT_GROUP_NAME",
    "LocalDeploymentError",
    "LocalDeploymentResult",
    "LocalOptions",
    "LocalReporter",
    "build_local_spec",
    "deploy_local",
    "order_events",
]

logger = logging.getLogger(__name__)

DEFAULT_DEPLOYMENT_GROUP_ID = "default-local-deployment-group"
DEFAULT_DEPLOYMENT_GROUP_NAME = "LocalFleet"
BUNDLE_TYPES = ("tgz", "tar", "zip", "directory")

# Events the official validator refuses before DownloadBundle / before Install.
_NOT_BEFORE_DOWNLOAD = (
    "AfterInstall",
    "ApplicationStart",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
    "ValidateService",
    "Install",
)
_NOT_BEFORE_INSTALL = (
    "AfterInstall",
    "ApplicationStart",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
    "ValidateService",
)


class LocalDeploymentError(AgentError, ValueError):
    """An option of a local deployment is invalid (official ``codedeploy-local`` wording)."""


@dataclass(frozen=True, kw_only=True)
class LocalOptions:
    """The options of ``codedeploy-local``, with its defaults.

    ``bundle_location`` ``None`` means the current directory; ``events`` is the raw
    comma-separated list as given (``None``: the default list).
    """

    bundle_location: str | None = None
    bundle_type: str = "directory"
    file_exists_behavior: str = "DISALLOW"
    deployment_group_id: str = DEFAULT_DEPLOYMENT_GROUP_ID
    deployment_group_name: str = DEFAULT_DEPLOYMENT_GROUP_NAME
    application_name: str | None = None
    events: str | None = None
    appspec_filename: str | None = None
    ignore_application_stop_failures: bool = False


class LocalReporter(Protocol):
    """Receives the progress of a local deployment; the CLI decides how to show it."""

    def started(self, spec: DeploymentSpec, folder: Path, events: Sequence[str]) -> None: ...

    def event_started(self, event: str) -> None: ...

    def output(self, event: str, stream: str, line: str) -> None: ...

    def event_finished(self, result: EventResult) -> None: ...

    def message(self, text: str) -> None: ...


@dataclass(frozen=True, kw_only=True)
class LocalDeploymentResult:
    """Every event's result, in order; ``failure`` is the event that stopped the deployment."""

    spec: DeploymentSpec
    folder: Path
    events: tuple[str, ...]
    results: tuple[EventResult, ...] = field(default_factory=tuple)
    duration: float = 0.0

    @property
    def failure(self) -> EventResult | None:
        return next((r for r in self.results if r.failed), None)

    @property
    def succeeded(self) -> bool:
        return self.failure is None


# -- options -------------------------------------------------------------------------------------


def order_events(raw: str | None) -> tuple[str, ...]:
    """The events to run, in order, from the ``--events`` value (official rules).

    With no value, the default list. Otherwise the given events in the given order, refusing
    events that cannot come before DownloadBundle or Install, then DownloadBundle and Install
    are put in front when missing (and swapped if that left Install before DownloadBundle).
    """
    if raw is None:
        return DEFAULT_LIFECYCLE_EVENTS
    events = [name.strip() for name in raw.split(",")]
    if not all(events):
        raise LocalDeploymentError(f"events: {raw!r} has an empty event name")
    _check_order(events, "DownloadBundle", _NOT_BEFORE_DOWNLOAD, raw)
    _check_order(events, "Install", _NOT_BEFORE_INSTALL, raw)
    if "DownloadBundle" not in events:
        events.insert(0, "DownloadBundle")
    if "Install" not in events:
        events.insert(0, "Install")
    download, install = events.index("DownloadBundle"), events.index("Install")
    if install < download:
        events[install], events[download] = events[download], events[install]
    return tuple(events)


def _check_order(events: list[str], anchor: str, forbidden: Sequence[str], raw: str) -> None:
    if anchor not in events:
        return
    before = events[: events.index(anchor)]
    if any(name in forbidden for name in before):
        allowed = {
            "DownloadBundle": "BeforeBlockTraffic,AfterBlockTraffic,ApplicationStop",
            "Install": "BeforeBlockTraffic,AfterBlockTraffic,ApplicationStop,DownloadBundle,"
            "BeforeInstall",
        }[anchor]
        raise LocalDeploymentError(
            f"The only events that can be specified before {anchor} are {allowed}. "
            f"Please fix the order of your specified events: {raw}"
        )


def _revision_type(location: str, bundle_type: str, appspec_filename: str | None) -> str:
    """Check the bundle location as the official validator does; return its RevisionType."""
    try:
        parsed = urllib.parse.urlparse(location)
    except ValueError as exc:
        raise LocalDeploymentError(f"location {location} is not a valid uri") from exc
    scheme = parsed.scheme.lower()
    if scheme == "http":
        raise LocalDeploymentError(
            f"location {location} cannot be http, only encrypted (https) url endpoints supported"
        )
    if scheme == "s3":
        if not parsed.netloc or not parsed.path.strip("/"):
            raise LocalDeploymentError(
                f"s3 location {location} not in the expected format of 's3://bucket/key'"
            )
        raise LocalDeploymentError(
            f"location {location}: S3 bundles are not supported by opendeploy local yet"
        )
    if scheme == "https":
        raise LocalDeploymentError(
            f"location {location}: GitHub and HTTPS bundles are not supported by opendeploy "
            "local yet"
        )
    if scheme not in ("", "file") and len(scheme) > 1:  # "C:" style paths are not schemes
        raise LocalDeploymentError(
            f"unknown location {location} cannot be determined to be S3, Github, or a local "
            "file / directory"
        )
    path = resolve_local_location(location)
    check_local_location(path, bundle_type)
    if bundle_type == "directory":
        _check_appspec_present(location, path, appspec_filename)
        return "Local Directory"
    return "Local File"


def _check_appspec_present(location: str, path: Path, appspec_filename: str | None) -> None:
    if appspec_filename:
        if not (path / appspec_filename).is_file():
            raise LocalDeploymentError(
                f"Expecting appspec file at location {location}/{appspec_filename} but it is not "
                "found there. Please either run the CLI from within a directory containing the "
                f"{appspec_filename} file or specify a bundle location containing an "
                f"{appspec_filename} file in its root directory"
            )
    elif not ((path / "appspec.yml").is_file() or (path / "appspec.yaml").is_file()):
        raise LocalDeploymentError(
            f"Expecting appspec file at location {location}/appspec.yml or "
            f"{location}/appspec.yaml but it is not found there. Please either run the CLI from "
            "within a directory containing the appspec.yml or appspec.yaml file or specify a "
            "bundle location containing an appspec.yml or appspec.yaml file in its root directory"
        )


def build_local_spec(
    options: LocalOptions, *, deployment_id: str | None = None
) -> tuple[DeploymentSpec, tuple[str, ...]]:
    """Check ``options`` and build the ``TEXT/JSON`` deployment spec and the event list."""
    if options.bundle_type not in BUNDLE_TYPES:
        raise LocalDeploymentError(
            f"type {options.bundle_type} is not a valid type. Must be one of "
            + ",".join(BUNDLE_TYPES)
        )
    location = options.bundle_location or str(Path.cwd())
    revision_type = _revision_type(location, options.bundle_type, options.appspec_filename)
    events = order_events(options.events)
    try:
        check_path_component("--deployment-group", options.deployment_group_id)
    except AgentError as exc:
        raise LocalDeploymentError(str(exc)) from exc
    all_events = list(dict.fromkeys((*DEFAULT_LIFECYCLE_EVENTS, *events)))
    payload = {
        "DeploymentId": deployment_id or new_local_deployment_id(),
        "DeploymentGroupId": options.deployment_group_id,
        "DeploymentGroupName": options.deployment_group_name,
        "ApplicationName": options.application_name or location,
        "AppSpecFilename": options.appspec_filename or "appspec.yml",
        "AgentActionOverrides": {
            "AgentOverrides": {"FileExistsBehavior": options.file_exists_behavior}
        },
        "Revision": {
            "RevisionType": revision_type,
            "LocalRevision": {"Location": location, "BundleType": options.bundle_type},
        },
        "AllPossibleLifecycleEvents": all_events,
    }
    try:
        return parse_deployment_spec(payload), events
    except DeploymentSpecError as exc:
        raise LocalDeploymentError(str(exc)) from exc


# -- running -------------------------------------------------------------------------------------


def _log_result(result: EventResult) -> None:
    if result.status is EventStatus.FAILED or result.ignored_failure:
        level = logging.WARNING if result.ignored_failure else logging.ERROR
        logger.log(
            level,
            "%s: %s%s (%s%s): %s",
            result.event,
            "failure ignored" if result.ignored_failure else "failed",
            f" after {result.duration:.2f}s",
            result.error_code.value,
            f", script {result.script_name}" if result.script_name else "",
            result.message,
        )
    else:
        logger.info("%s: %s in %.2fs", result.event, result.status.value, result.duration)


class _Silent:
    def started(self, spec: DeploymentSpec, folder: Path, events: Sequence[str]) -> None:
        pass

    def event_started(self, event: str) -> None:
        pass

    def output(self, event: str, stream: str, line: str) -> None:
        pass

    def event_finished(self, result: EventResult) -> None:
        pass

    def message(self, text: str) -> None:
        pass


def deploy_local(
    options: LocalOptions,
    *,
    config: AgentConfig,
    reporter: LocalReporter | None = None,
    deployment_id: str | None = None,
) -> LocalDeploymentResult:
    """Run a local deployment: check the options, then each event in order until one fails.

    Raises :class:`LocalDeploymentError` (or another :class:`~opendeploy.errors.OpenDeployError`)
    for invalid options, before anything is written; a failing event does not raise, it ends
    the deployment and is the result's ``failure``.
    """
    report: LocalReporter = reporter if reporter is not None else _Silent()
    started = time.monotonic()
    spec, events = build_local_spec(options, deployment_id=deployment_id)
    if options.bundle_type == "directory":
        # A directory bundle's appspec can be read now: refuse os: windows before the previous
        # revision's ApplicationStop stops anything. Archives are checked by DownloadBundle.
        try:
            refuse_foreign_os(
                resolve_local_location(options.bundle_location or str(Path.cwd())),
                options.appspec_filename,
            )
        except AppSpecError as exc:
            raise LocalDeploymentError(str(exc)) from exc
    folder = deployment_root(config).deployment(spec.deployment_group_id, spec.deployment_id).path
    report.message(f"Starting to execute deployment from within folder {folder}")
    logger.info(
        "Starting deployment %s of %s (type %s) in %s: events %s",
        spec.deployment_id,
        options.bundle_location or Path.cwd(),
        options.bundle_type,
        folder,
        ",".join(events),
    )
    report.started(spec, folder, events)
    results: list[EventResult] = []
    try:
        for event in events:
            report.event_started(event)
            logger.info("%s: started", event)

            def on_output(stream: str, line: str, _event: str = event) -> None:
                logger.debug("%s [%s] %s", _event, stream, line)
                report.output(_event, stream, line)

            result = execute_event(
                spec,
                event,
                config=config,
                on_output=on_output,
                ignore_application_stop_failures=options.ignore_application_stop_failures,
            )
            results.append(result)
            report.event_finished(result)
            _log_result(result)
            if result.status is EventStatus.FAILED:
                if result.script_name:
                    revision = result.revision_dir or folder
                    report.message(
                        "Your local deployment failed while trying to execute your script at "
                        f"{revision / 'deployment-archive' / result.script_name}"
                    )
                break
        else:
            report.message("AppSpec file valid. Local deployment successful")
    finally:
        report.message(
            f"See the deployment log at {folder / 'logs' / 'scripts.log'} for more details"
        )
    return LocalDeploymentResult(
        spec=spec,
        folder=folder,
        events=events,
        results=tuple(results),
        duration=time.monotonic() - started,
    )
