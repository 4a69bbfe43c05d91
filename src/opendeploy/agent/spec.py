"""The deployment specification: what one host command says about its deployment.

The server sends it with every host command (``DeploymentSpecification``: a format and a
payload); ``codedeploy-local`` builds the same payload itself. The JSON keys are the official
ones (``DeploymentId``, ``DeploymentGroupId``, ``Revision.LocalRevision``, …) and every
validation error carries the official agent's message, so the two agents fail alike.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opendeploy.appspec.model import FileExistsBehavior
from opendeploy.errors import AgentError

__all__ = [
    "DeploymentSpec",
    "DeploymentSpecError",
    "GitHubRevision",
    "LocalRevision",
    "Revision",
    "RevisionType",
    "S3Revision",
    "parse_deployment_spec",
]

LOCAL_BUNDLE_TYPES = ("tar", "tgz", "zip", "directory")


class DeploymentSpecError(AgentError, ValueError):
    """The deployment specification is missing a key or holds an invalid value."""


class RevisionType(enum.StrEnum):
    S3 = "S3"
    GITHUB = "GitHub"
    LOCAL_FILE = "Local File"
    LOCAL_DIRECTORY = "Local Directory"


@dataclass(frozen=True, kw_only=True)
class S3Revision:
    bucket: str
    key: str
    bundle_type: str
    version: str | None = None
    etag: str | None = None


@dataclass(frozen=True, kw_only=True)
class GitHubRevision:
    account: str
    repository: str
    commit_id: str
    bundle_type: str = "tar"
    anonymous: bool = True
    oauth_token: str | None = None


@dataclass(frozen=True, kw_only=True)
class LocalRevision:
    location: str
    bundle_type: str


Revision = S3Revision | GitHubRevision | LocalRevision


@dataclass(frozen=True, kw_only=True)
class DeploymentSpec:
    """A validated deployment specification (the official ``DeploymentSpecification``)."""

    deployment_id: str
    deployment_group_id: str
    deployment_group_name: str
    application_name: str
    revision_type: RevisionType
    revision: Revision
    deployment_creator: str = "user"
    deployment_type: str = "IN_PLACE"
    appspec_filename: str = "appspec.yml"
    file_exists_behavior: FileExistsBehavior = FileExistsBehavior.DISALLOW
    all_possible_lifecycle_events: tuple[str, ...] | None = None
    github_access_token: str | None = None

    @property
    def bundle_type(self) -> str:
        return self.revision.bundle_type

    @property
    def is_blue_green_rollback(self) -> bool:
        """A blue/green rollback: hooks then take another revision (see the executor)."""
        return self.deployment_type == "BLUE_GREEN" and self.deployment_creator == (
            "codeDeployRollback"
        )

    def revision_env(self) -> dict[str, str]:
        """The bundle variables a hook sees (S3: ``BUNDLE_*``; GitHub: ``BUNDLE_COMMIT``)."""
        rev = self.revision
        if isinstance(rev, S3Revision):
            env = {"BUNDLE_BUCKET": rev.bucket, "BUNDLE_KEY": rev.key}
            if rev.version is not None:
                env["BUNDLE_VERSION"] = rev.version
            if rev.etag is not None:
                env["BUNDLE_ETAG"] = rev.etag
            return env
        if isinstance(rev, GitHubRevision):
            return {"BUNDLE_COMMIT": rev.commit_id}
        return {}

    def to_payload(self) -> dict[str, Any]:
        """The official JSON payload for this spec (what :func:`parse_deployment_spec` reads)."""
        payload: dict[str, Any] = {
            "DeploymentId": self.deployment_id,
            "DeploymentGroupId": self.deployment_group_id,
            "DeploymentGroupName": self.deployment_group_name,
            "ApplicationName": self.application_name,
            "DeploymentCreator": self.deployment_creator,
            "DeploymentType": self.deployment_type,
            "AppSpecFilename": self.appspec_filename,
            "AgentActionOverrides": {
                "AgentOverrides": {"FileExistsBehavior": self.file_exists_behavior.value}
            },
            "Revision": {"RevisionType": self.revision_type.value, **_revision_payload(self)},
        }
        if self.all_possible_lifecycle_events is not None:
            payload["AllPossibleLifecycleEvents"] = list(self.all_possible_lifecycle_events)
        if self.github_access_token is not None:
            payload["GitHubAccessToken"] = self.github_access_token
        return payload


def _revision_payload(spec: DeploymentSpec) -> dict[str, Any]:
    rev = spec.revision
    if isinstance(rev, S3Revision):
        s3: dict[str, Any] = {"Bucket": rev.bucket, "Key": rev.key, "BundleType": rev.bundle_type}
        if rev.version is not None:
            s3["Version"] = rev.version
        if rev.etag is not None:
            s3["ETag"] = rev.etag
        return {"S3Revision": s3}
    if isinstance(rev, GitHubRevision):
        gh: dict[str, Any] = {
            "Account": rev.account,
            "Repository": rev.repository,
            "CommitId": rev.commit_id,
            "BundleType": rev.bundle_type,
            "Anonymous": rev.anonymous,
        }
        if rev.oauth_token is not None:
            gh["OAuthToken"] = rev.oauth_token
        return {"GitHubRevision": gh}
    return {"LocalRevision": {"Location": rev.location, "BundleType": rev.bundle_type}}


def _set(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    return value is not None and value != "" and value != {} and value != []


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise DeploymentSpecError(f"{key}: {value!r} is not a string")
    return value


def parse_deployment_spec(payload: str | bytes | Mapping[str, Any] | None) -> DeploymentSpec:
    """Parse a ``TEXT/JSON`` deployment specification payload (a JSON text or its mapping).

    Raises :class:`DeploymentSpecError` with the official agent's messages.
    """
    if payload is None or payload == "" or payload == b"":
        raise DeploymentSpecError("Provided deployment spec was nil")
    if isinstance(payload, str | bytes):
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise DeploymentSpecError(f"Deployment Spec is not valid JSON: {exc}") from exc
    else:
        data = payload
    if not isinstance(data, Mapping):
        raise DeploymentSpecError("Deployment Spec must be a JSON object")

    for key in ("DeploymentId", "DeploymentGroupId", "DeploymentGroupName", "ApplicationName"):
        if not _set(data, key):
            raise DeploymentSpecError(f"Deployment Spec has no {key}")
    deployment_id = _str(data, "DeploymentId")
    if deployment_id.startswith("arn:"):
        # arn:aws:codedeploy:<region>:<account>:deployment/d-XXXXXXXXX -> d-XXXXXXXXX
        deployment_id = deployment_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]

    overrides = data.get("AgentActionOverrides") or {}
    agent_overrides = overrides.get("AgentOverrides") if isinstance(overrides, Mapping) else None
    behavior_text = "DISALLOW"
    if isinstance(agent_overrides, Mapping) and _set(agent_overrides, "FileExistsBehavior"):
        behavior_text = str(agent_overrides["FileExistsBehavior"]).upper()
    try:
        behavior = FileExistsBehavior(behavior_text)
    except ValueError:
        raise DeploymentSpecError(
            "The deployment failed because an invalid option was specified for "
            f"fileExistsBehavior: {behavior_text}. Valid options include OVERWRITE, RETAIN, "
            "and DISALLOW."
        ) from None

    events = data.get("AllPossibleLifecycleEvents")
    if events is not None and (
        not isinstance(events, list) or not all(isinstance(e, str) for e in events)
    ):
        raise DeploymentSpecError(
            f"AllPossibleLifecycleEvents: {events!r} is not a list of event names"
        )

    revision_type, revision = _parse_revision(data)
    token = data.get("GitHubAccessToken")
    return DeploymentSpec(
        deployment_id=deployment_id,
        deployment_group_id=_str(data, "DeploymentGroupId"),
        deployment_group_name=_str(data, "DeploymentGroupName"),
        application_name=_str(data, "ApplicationName"),
        deployment_creator=str(data.get("DeploymentCreator") or "user"),
        deployment_type=str(data.get("DeploymentType") or "IN_PLACE"),
        appspec_filename=str(data.get("AppSpecFilename") or "appspec.yml"),
        file_exists_behavior=behavior,
        all_possible_lifecycle_events=None if events is None else tuple(events),
        github_access_token=token if isinstance(token, str) and token else None,
        revision_type=revision_type,
        revision=revision,
    )


def _parse_revision(data: Mapping[str, Any]) -> tuple[RevisionType, Revision]:
    if not _set(data, "Revision"):
        raise DeploymentSpecError("Must specify a revison")  # [sic], the official message
    rev = data["Revision"]
    if not isinstance(rev, Mapping) or not _set(rev, "RevisionType"):
        raise DeploymentSpecError("Must specify a revision source")
    kind = rev["RevisionType"]
    if kind == RevisionType.S3:
        s3 = rev.get("S3Revision")
        if not isinstance(s3, Mapping) or not all(
            _set(s3, k) for k in ("Bucket", "Key", "BundleType")
        ):
            raise DeploymentSpecError(
                "S3Revision in Deployment Spec must specify Bucket, Key and BundleType"
            )
        if s3["BundleType"] not in ("tar", "tgz", "zip"):
            raise DeploymentSpecError("BundleType in S3Revision must be tar, tgz or zip")
        return RevisionType.S3, S3Revision(
            bucket=str(s3["Bucket"]),
            key=str(s3["Key"]),
            bundle_type=str(s3["BundleType"]),
            version=str(s3["Version"]) if _set(s3, "Version") else None,
            etag=str(s3["ETag"]) if _set(s3, "ETag") else None,
        )
    if kind == RevisionType.GITHUB:
        gh = rev.get("GitHubRevision")
        if not isinstance(gh, Mapping) or not all(
            _set(gh, k) for k in ("Account", "Repository", "CommitId")
        ):
            raise DeploymentSpecError(
                "GitHubRevision in Deployment Spec must specify Account, Repository and CommitId"
            )
        bundle_type = str(gh.get("BundleType") or "tar")
        if bundle_type not in ("tar", "zip"):
            raise DeploymentSpecError(
                "GitHub revision specified with bundle_type other than zip or tar "
                f"[bundle_type={bundle_type}]"
            )
        return RevisionType.GITHUB, GitHubRevision(
            account=str(gh["Account"]),
            repository=str(gh["Repository"]),
            commit_id=str(gh["CommitId"]),
            bundle_type=bundle_type,
            anonymous=bool(gh.get("Anonymous", True)),
            oauth_token=str(gh["OAuthToken"]) if _set(gh, "OAuthToken") else None,
        )
    if kind in (RevisionType.LOCAL_FILE, RevisionType.LOCAL_DIRECTORY):
        local = rev.get("LocalRevision")
        if not isinstance(local, Mapping) or not all(
            _set(local, k) for k in ("Location", "BundleType")
        ):
            raise DeploymentSpecError(
                "LocalRevision in Deployment Spec must specify Location and BundleType"
            )
        if local["BundleType"] not in LOCAL_BUNDLE_TYPES:
            raise DeploymentSpecError(
                "BundleType in LocalRevision must be tar, tgz, zip, or directory"
            )
        return RevisionType(kind), LocalRevision(
            location=str(local["Location"]), bundle_type=str(local["BundleType"])
        )
    raise DeploymentSpecError(
        "Exactly one of S3Revision, GitHubRevision, or LocalRevision must be specified"
    )
