"""Where revision bundles come from: one module per kind of location, behind ``RevisionSource``.

:func:`source_for_revision` turns the ``Revision`` object of a deployment specification (the
official agent's JSON shape, agent-behaviour §1.4) into the source that fetches it.
"""

from __future__ import annotations

# Aliased so the package namespace holds only its public names (and its submodules).
from collections.abc import Mapping as _Mapping
from dataclasses import dataclass as _dataclass
from dataclasses import field as _field
from typing import Any as _Any

from opendeploy.errors import BundleError as _BundleError
from opendeploy.revisions.sources.base import RevisionSource
from opendeploy.revisions.sources.git import GitHubLocation, GitSource, parse_github_location
from opendeploy.revisions.sources.local import (
    LocalFileSource,
    check_local_location,
    resolve_local_location,
)
from opendeploy.revisions.sources.s3 import (
    S3Credentials,
    S3Location,
    S3Source,
    parse_s3_location,
    s3_client,
)

__all__ = [
    "GitHubLocation",
    "GitSource",
    "LocalFileSource",
    "RevisionSource",
    "S3Credentials",
    "S3Location",
    "S3Source",
    "SourceSettings",
    "check_local_location",
    "parse_github_location",
    "parse_s3_location",
    "resolve_local_location",
    "s3_client",
    "source_for_revision",
]


@_dataclass(frozen=True, kw_only=True)
class SourceSettings:
    """How this host reaches bundle stores (from the agent's configuration).

    S3: ``s3_endpoint_url`` for any S3-compatible store (``None``: AWS), its own ``s3_proxy``,
    credentials from ``s3_credentials`` or ``s3_profile`` or boto3's usual chain, and timeouts.
    Git: ``git_base_url`` is the server GitHub revisions are fetched from (any git server that
    hosts ``<account>/<repository>``), ``github_token`` a token sent to it when the deployment
    spec carries none.
    """

    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_proxy: str | None = None
    s3_profile: str | None = None
    s3_credentials: S3Credentials | None = _field(default=None, repr=False)
    s3_connect_timeout: float = 10.0
    s3_read_timeout: float = 60.0
    s3_max_attempts: int = 3
    #: How long a failed download is tried again, resuming (0: once; see S3Source.fetch).
    s3_retry_seconds: float = 0.0
    git_base_url: str = "https://github.com"
    github_token: str | None = _field(default=None, repr=False)
    git_timeout: float = 600.0


_DEFAULT_SETTINGS = SourceSettings()


def source_for_revision(
    revision: _Mapping[str, _Any],
    *,
    settings: SourceSettings = _DEFAULT_SETTINGS,
    github_access_token: str | None = None,
) -> RevisionSource:
    """The source for a deployment spec's ``Revision`` (``RevisionType`` + one location object).

    ``S3`` → :class:`S3Source`, ``GitHub`` → :class:`GitSource` (repository ``<Account>/
    <Repository>``, or ``Repository`` alone when it already holds a slash), ``Local File`` /
    ``Local Directory`` → :class:`LocalFileSource`. ``github_access_token`` is the spec's
    top-level ``GitHubAccessToken``; like the official agent, it (or ``OAuthToken``) is sent only
    when ``Anonymous`` is false; ``settings.github_token`` is used otherwise. Errors use the
    official agent's messages.
    """
    if not isinstance(revision, _Mapping) or not revision.get("RevisionType"):
        raise _BundleError("Must specify a revision source")
    kind = revision["RevisionType"]
    if kind == "S3":
        return _s3(revision.get("S3Revision"), settings)
    if kind == "GitHub":
        return _github(revision.get("GitHubRevision"), settings, github_access_token)
    if kind in ("Local File", "Local Directory"):
        local = revision.get("LocalRevision")
        if not _has(local, "Location", "BundleType"):
            raise _BundleError(
                "LocalRevision in Deployment Spec must specify Location and BundleType"
            )
        assert isinstance(local, _Mapping)
        if local["BundleType"] not in ("tar", "tgz", "zip", "directory"):
            raise _BundleError("BundleType in LocalRevision must be tar, tgz, zip, or directory")
        path = resolve_local_location(str(local["Location"]))
        check_local_location(path, str(local["BundleType"]))
        return LocalFileSource(path=path, bundle_type=str(local["BundleType"]))
    raise _BundleError(
        "Exactly one of S3Revision, GitHubRevision, or LocalRevision must be specified"
    )


def _has(obj: object, *keys: str) -> bool:
    return isinstance(obj, _Mapping) and all(obj.get(k) not in (None, "") for k in keys)


def _s3(s3: object, settings: SourceSettings) -> S3Source:
    if not _has(s3, "Bucket", "Key", "BundleType"):
        raise _BundleError("S3Revision in Deployment Spec must specify Bucket, Key and BundleType")
    assert isinstance(s3, _Mapping)
    if s3["BundleType"] not in ("tar", "tgz", "zip"):
        raise _BundleError("BundleType in S3Revision must be tar, tgz or zip")
    return S3Source(
        str(s3["Bucket"]),
        str(s3["Key"]),
        str(s3["BundleType"]),
        version=str(s3["Version"]) if s3.get("Version") else None,
        etag=str(s3["ETag"]) if s3.get("ETag") else None,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        proxy=settings.s3_proxy,
        profile=settings.s3_profile,
        credentials=settings.s3_credentials,
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        max_attempts=settings.s3_max_attempts,
        retry_seconds=settings.s3_retry_seconds,
    )


def _github(gh: object, settings: SourceSettings, access_token: str | None) -> GitSource:
    if not _has(gh, "Account", "Repository", "CommitId"):
        raise _BundleError(
            "GitHubRevision in Deployment Spec must specify Account, Repository and CommitId"
        )
    assert isinstance(gh, _Mapping)
    bundle_type = str(gh.get("BundleType") or "tar")
    if bundle_type not in ("tar", "zip"):
        raise _BundleError(
            "GitHub revision specified with bundle_type other than zip or tar "
            f"[bundle_type={bundle_type}]"
        )
    repository = str(gh["Repository"])
    if "/" not in repository:
        repository = f"{gh['Account']}/{repository}"
    token = settings.github_token
    if gh.get("Anonymous") is False:
        token = access_token or gh.get("OAuthToken") or token
    return GitSource(
        repository,
        str(gh["CommitId"]),
        bundle_type,
        base_url=settings.git_base_url,
        token=token,
        timeout=settings.git_timeout,
    )
