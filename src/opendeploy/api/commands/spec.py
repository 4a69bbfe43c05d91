"""The deployment specification the server hands out with every host command.

The payload has the official keys (agent-behaviour §1.4), so both agents read it: ``DeploymentId``,
``DeploymentGroupId``, ``DeploymentGroupName``, ``ApplicationName``, ``DeploymentCreator``,
``DeploymentType``, ``AgentActionOverrides.AgentOverrides.FileExistsBehavior`` and ``Revision``
(``S3Revision`` or ``GitHubRevision``), built from the deployment as stored.

Envelope format (a choice of ours): ``PKCS7/JSON`` signed by :class:`SpecSigner`, which the
official agent requires, unless the request's ``x-amz-codedeploy-agent-version`` header starts
with ``OPENDEPLOY``: the OpenDeploy agent gets ``TEXT/JSON`` (the plain JSON) and skips the
PKCS#7 decoding it would otherwise also accept.
"""

from __future__ import annotations

import json
from typing import Any

from opendeploy.api.commands.signing import SpecSigner
from opendeploy.domain.records import DeploymentStyle
from opendeploy.errors import ServiceError

TEXT_JSON = "TEXT/JSON"
PKCS7_JSON = "PKCS7/JSON"
OPENDEPLOY_AGENT_PREFIX = "OPENDEPLOY"


class ClientError(ServiceError):
    """The Command API's own client error (its model declares only this and ServerException)."""

    code = "ClientException"


def spec_format(agent_version: str | None) -> str:
    """``TEXT/JSON`` for the OpenDeploy agent, ``PKCS7/JSON`` for every other one."""
    if agent_version and agent_version.upper().startswith(OPENDEPLOY_AGENT_PREFIX):
        return TEXT_JSON
    return PKCS7_JSON


def _revision(deployment_id: str, revision: dict[str, Any] | None) -> dict[str, Any]:
    kind = (revision or {}).get("revisionType")
    if kind == "S3":
        loc = revision["s3Location"] if revision else {}
        s3: dict[str, Any] = {
            "Bucket": loc.get("bucket"),
            "Key": loc.get("key"),
            "BundleType": loc.get("bundleType"),
        }
        if loc.get("version"):
            s3["Version"] = loc["version"]
        if loc.get("eTag"):
            s3["ETag"] = loc["eTag"]
        return {"RevisionType": "S3", "S3Revision": s3}
    if kind == "GitHub":
        loc = revision["gitHubLocation"] if revision else {}
        account, _, repository = str(loc.get("repository") or "").partition("/")
        return {
            "RevisionType": "GitHub",
            "GitHubRevision": {
                "Account": account,
                "Repository": repository,
                "CommitId": loc.get("commitId"),
                "BundleType": "tar",
            },
        }
    raise ClientError(
        f"Deployment {deployment_id}: revisionType {kind!r} cannot be deployed by a host agent "
        "(S3 or GitHub only)"
    )


def spec_payload(deployment: dict[str, Any]) -> dict[str, Any]:
    """The official JSON payload for a stored deployment row."""
    style = DeploymentStyle.from_wire(deployment.get("deployment_style"))
    return {
        "DeploymentId": deployment["deployment_id"],
        "DeploymentGroupId": deployment["deployment_group_id"],
        "DeploymentGroupName": deployment["deployment_group_name"],
        "ApplicationName": deployment["application_name"],
        "DeploymentCreator": deployment["creator"],
        "DeploymentType": str(style.deployment_type),
        "AgentActionOverrides": {
            "AgentOverrides": {"FileExistsBehavior": deployment["file_exists_behavior"]}
        },
        "Revision": _revision(deployment["deployment_id"], deployment.get("revision")),
    }


def envelope(payload: dict[str, Any], fmt: str, signer: SpecSigner) -> dict[str, str]:
    """``GenericEnvelope`` {Format, Payload} of ``payload`` in ``fmt``."""
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    if fmt == TEXT_JSON:
        return {"Format": TEXT_JSON, "Payload": text}
    return {"Format": PKCS7_JSON, "Payload": signer.sign(text.encode("utf-8"))}
