"""The deployment specification payload: official keys, defaults and error messages (§1.4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opendeploy.agent.spec import (
    DeploymentSpecError,
    GitHubRevision,
    LocalRevision,
    RevisionType,
    S3Revision,
    parse_deployment_spec,
)
from opendeploy.appspec.model import FileExistsBehavior


def payload(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "DeploymentId": "d-ABCDEFGHI",
        "DeploymentGroupId": "dg-id",
        "DeploymentGroupName": "dg",
        "ApplicationName": "app",
        "Revision": {
            "RevisionType": "S3",
            "S3Revision": {"Bucket": "b", "Key": "k.zip", "BundleType": "zip"},
        },
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_defaults() -> None:
    spec = parse_deployment_spec(json.dumps(payload()))
    assert spec.deployment_creator == "user"
    assert spec.deployment_type == "IN_PLACE"
    assert spec.appspec_filename == "appspec.yml"
    assert spec.file_exists_behavior is FileExistsBehavior.DISALLOW
    assert spec.all_possible_lifecycle_events is None
    assert spec.revision == S3Revision(bucket="b", key="k.zip", bundle_type="zip")
    assert spec.revision_env() == {"BUNDLE_BUCKET": "b", "BUNDLE_KEY": "k.zip"}
    assert not spec.is_blue_green_rollback


def test_arn_deployment_id_is_reduced() -> None:
    spec = parse_deployment_spec(
        payload(DeploymentId="arn:aws:codedeploy:us-east-1:123456789012:deployment/d-XYZ123456")
    )
    assert spec.deployment_id == "d-XYZ123456"


def test_overrides_and_events() -> None:
    spec = parse_deployment_spec(
        payload(
            AgentActionOverrides={"AgentOverrides": {"FileExistsBehavior": "overwrite"}},
            AllPossibleLifecycleEvents=["ApplicationStart", "Custom"],
            DeploymentType="BLUE_GREEN",
            DeploymentCreator="codeDeployRollback",
            AppSpecFilename="custom.yml",
        )
    )
    assert spec.file_exists_behavior is FileExistsBehavior.OVERWRITE
    assert spec.all_possible_lifecycle_events == ("ApplicationStart", "Custom")
    assert spec.is_blue_green_rollback
    assert spec.appspec_filename == "custom.yml"


def test_round_trip_through_the_payload() -> None:
    spec = parse_deployment_spec(
        payload(
            Revision={
                "RevisionType": "GitHub",
                "GitHubRevision": {"Account": "a", "Repository": "r", "CommitId": "abc"},
            }
        )
    )
    assert spec.revision == GitHubRevision(account="a", repository="r", commit_id="abc")
    assert spec.revision_env() == {"BUNDLE_COMMIT": "abc"}
    assert parse_deployment_spec(spec.to_payload()) == spec


def test_local_revisions() -> None:
    for kind, bundle_type in (("Local File", "tgz"), ("Local Directory", "directory")):
        spec = parse_deployment_spec(
            payload(
                Revision={
                    "RevisionType": kind,
                    "LocalRevision": {"Location": "/b", "BundleType": bundle_type},
                }
            )
        )
        assert spec.revision_type is RevisionType(kind)
        assert spec.revision == LocalRevision(location="/b", bundle_type=bundle_type)
        assert spec.revision_env() == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (payload(DeploymentId=""), "Deployment Spec has no DeploymentId"),
        (payload(DeploymentGroupId=None), "Deployment Spec has no DeploymentGroupId"),
        (payload(DeploymentGroupName=None), "Deployment Spec has no DeploymentGroupName"),
        (payload(ApplicationName=None), "Deployment Spec has no ApplicationName"),
        (payload(Revision=None), "Must specify a revison"),
        (payload(Revision={"S3Revision": {}}), "Must specify a revision source"),
        (
            payload(Revision={"RevisionType": "S3", "S3Revision": {"Bucket": "b"}}),
            "S3Revision in Deployment Spec must specify Bucket, Key and BundleType",
        ),
        (
            payload(
                Revision={
                    "RevisionType": "S3",
                    "S3Revision": {"Bucket": "b", "Key": "k", "BundleType": "rar"},
                }
            ),
            "BundleType in S3Revision must be tar, tgz or zip",
        ),
        (
            payload(Revision={"RevisionType": "GitHub", "GitHubRevision": {"Account": "a"}}),
            "GitHubRevision in Deployment Spec must specify Account, Repository and CommitId",
        ),
        (
            payload(Revision={"RevisionType": "Local File", "LocalRevision": {"Location": "x"}}),
            "LocalRevision in Deployment Spec must specify Location and BundleType",
        ),
        (
            payload(
                Revision={
                    "RevisionType": "Local File",
                    "LocalRevision": {"Location": "x", "BundleType": "rar"},
                }
            ),
            "BundleType in LocalRevision must be tar, tgz, zip, or directory",
        ),
        (
            payload(Revision={"RevisionType": "CodeCommit"}),
            "Exactly one of S3Revision, GitHubRevision, or LocalRevision must be specified",
        ),
        (
            payload(AgentActionOverrides={"AgentOverrides": {"FileExistsBehavior": "merge"}}),
            "The deployment failed because an invalid option was specified for "
            "fileExistsBehavior: MERGE. Valid options include OVERWRITE, RETAIN, and DISALLOW.",
        ),
        (None, "Provided deployment spec was nil"),
    ],
)
def test_official_error_messages(data: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(DeploymentSpecError) as err:
        parse_deployment_spec(data)
    assert str(err.value) == message


def test_not_json() -> None:
    with pytest.raises(DeploymentSpecError, match="not valid JSON"):
        parse_deployment_spec("{nope")
