"""source_for_revision: deployment-spec ``Revision`` objects to sources, official messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opendeploy.errors import BundleError
from opendeploy.revisions.sources import (
    GitSource,
    LocalFileSource,
    S3Source,
    SourceSettings,
    source_for_revision,
)


def test_s3_revision_gets_the_settings() -> None:
    settings = SourceSettings(s3_endpoint_url="http://127.0.0.1:9", s3_region="eu-west-3")
    source = source_for_revision(
        {
            "RevisionType": "S3",
            "S3Revision": {
                "Bucket": "b",
                "Key": "k.tgz",
                "BundleType": "tgz",
                "Version": "v",
                "ETag": '"e"',
            },
        },
        settings=settings,
    )
    assert isinstance(source, S3Source)
    assert (source.bucket, source.key, source.bundle_type) == ("b", "k.tgz", "tgz")
    assert (source.version, source.etag, source.endpoint_url) == ("v", '"e"', "http://127.0.0.1:9")
    assert source.revision_env()["BUNDLE_VERSION"] == "v"


@pytest.mark.parametrize("kind", ["Local File", "Local Directory"])
def test_local_revisions(tmp_path: Path, kind: str) -> None:
    bundle = tmp_path / "b.zip"
    bundle.write_bytes(b"PK")
    location, bundle_type = (
        (str(bundle), "zip") if kind == "Local File" else (str(tmp_path), "directory")
    )
    source = source_for_revision(
        {"RevisionType": kind, "LocalRevision": {"Location": location, "BundleType": bundle_type}}
    )
    assert source == LocalFileSource(path=Path(location), bundle_type=bundle_type)


def _gh(**fields: Any) -> dict[str, Any]:
    return {
        "RevisionType": "GitHub",
        "GitHubRevision": {
            "Account": "acme",
            "Repository": "web",
            "CommitId": "abcd1234",
            **fields,
        },
    }


def test_github_revision_defaults_and_tokens() -> None:
    settings = SourceSettings(git_base_url="https://git.example.com/", github_token="operator")
    source = source_for_revision(_gh(), settings=settings)
    assert isinstance(source, GitSource)
    assert (source.url, source.bundle_type) == ("https://git.example.com/acme/web", "tar")
    assert source.token == "operator"  # anonymous (the default): the spec's token is not sent

    private = source_for_revision(
        _gh(Anonymous=False), settings=settings, github_access_token="from-spec"
    )
    assert isinstance(private, GitSource) and private.token == "from-spec"
    oauth = source_for_revision(_gh(Anonymous=False, OAuthToken="oauth"), settings=settings)
    assert isinstance(oauth, GitSource) and oauth.token == "oauth"


def test_github_repository_may_already_hold_the_owner() -> None:
    source = source_for_revision(_gh(Repository="other/web", BundleType="zip"))
    assert isinstance(source, GitSource)
    assert (source.url, source.bundle_type) == ("https://github.com/other/web", "zip")


@pytest.mark.parametrize(
    ("revision", "message"),
    [
        ({}, "Must specify a revision source"),
        (
            {"RevisionType": "S3"},
            "S3Revision in Deployment Spec must specify Bucket, Key and BundleType",
        ),
        (
            {
                "RevisionType": "S3",
                "S3Revision": {"Bucket": "b", "Key": "k", "BundleType": "directory"},
            },
            "BundleType in S3Revision must be tar, tgz or zip",
        ),
        (
            {"RevisionType": "GitHub", "GitHubRevision": {"Account": "a", "Repository": "r"}},
            "GitHubRevision in Deployment Spec must specify Account, Repository and CommitId",
        ),
        (
            _gh(BundleType="tgz"),
            "GitHub revision specified with bundle_type other than zip or tar [bundle_type=tgz]",
        ),
        (
            {"RevisionType": "Local File", "LocalRevision": {"Location": "/x"}},
            "LocalRevision in Deployment Spec must specify Location and BundleType",
        ),
        (
            {
                "RevisionType": "Local File",
                "LocalRevision": {"Location": "/x", "BundleType": "rar"},
            },
            "BundleType in LocalRevision must be tar, tgz, zip, or directory",
        ),
        (
            {"RevisionType": "Inline"},
            "Exactly one of S3Revision, GitHubRevision, or LocalRevision must be specified",
        ),
    ],
)
def test_official_messages(revision: dict[str, Any], message: str) -> None:
    with pytest.raises(BundleError) as info:
        source_for_revision(revision)
    assert str(info.value) == message
