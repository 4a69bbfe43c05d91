"""Application ``app`` with group ``web`` (instances tagged ``role=web``), deployed from S3:
the set-up the end-to-end server tests share."""

from __future__ import annotations

from typing import Any


def deploy_to_web_group(
    cd: Any, bucket: str, key: str, *, config: str = "CodeDeployDefault.OneAtATime"
) -> str:
    """Create ``app`` and its ``web`` group (``config``), deploy ``s3://bucket/key`` (zip) to it;
    returns the deployment id."""
    cd.create_application(applicationName="app")
    cd.create_deployment_group(
        applicationName="app",
        deploymentGroupName="web",
        serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
        deploymentConfigName=config,
        onPremisesInstanceTagFilters=[{"Key": "role", "Value": "web", "Type": "KEY_AND_VALUE"}],
    )
    deployment_id: str = cd.create_deployment(
        applicationName="app",
        deploymentGroupName="web",
        revision={
            "revisionType": "S3",
            "s3Location": {"bucket": bucket, "key": key, "bundleType": "zip"},
        },
    )["deploymentId"]
    return deployment_id
