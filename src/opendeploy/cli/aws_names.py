"""The names of the ``aws deploy``-like commands, known without loading botocore or the model.

``opendeploy --help`` and shell completion list every subcommand; this table lets the lazy group
in ``main.py`` list them while importing nothing heavy. The commands themselves are generated from
the CodeDeploy model in :mod:`opendeploy.cli.aws_commands`; a test keeps this table equal to the
model's operations (named by botocore's ``xform_name``, as aws-cli names them).
"""

from __future__ import annotations

__all__ = ["AWS_COMMANDS", "OPERATIONS"]

#: aws-cli command name -> CodeDeploy operation name.
OPERATIONS: dict[str, str] = {
    "add-tags-to-on-premises-instances": "AddTagsToOnPremisesInstances",
    "batch-get-application-revisions": "BatchGetApplicationRevisions",
    "batch-get-applications": "BatchGetApplications",
    "batch-get-deployment-groups": "BatchGetDeploymentGroups",
    "batch-get-deployment-instances": "BatchGetDeploymentInstances",
    "batch-get-deployment-targets": "BatchGetDeploymentTargets",
    "batch-get-deployments": "BatchGetDeployments",
    "batch-get-on-premises-instances": "BatchGetOnPremisesInstances",
    "continue-deployment": "ContinueDeployment",
    "create-application": "CreateApplication",
    "create-deployment": "CreateDeployment",
    "create-deployment-config": "CreateDeploymentConfig",
    "create-deployment-group": "CreateDeploymentGroup",
    "delete-application": "DeleteApplication",
    "delete-deployment-config": "DeleteDeploymentConfig",
    "delete-deployment-group": "DeleteDeploymentGroup",
    "delete-git-hub-account-token": "DeleteGitHubAccountToken",
    "delete-resources-by-external-id": "DeleteResourcesByExternalId",
    "deregister-on-premises-instance": "DeregisterOnPremisesInstance",
    "get-application": "GetApplication",
    "get-application-revision": "GetApplicationRevision",
    "get-deployment": "GetDeployment",
    "get-deployment-config": "GetDeploymentConfig",
    "get-deployment-group": "GetDeploymentGroup",
    "get-deployment-instance": "GetDeploymentInstance",
    "get-deployment-target": "GetDeploymentTarget",
    "get-on-premises-instance": "GetOnPremisesInstance",
    "list-application-revisions": "ListApplicationRevisions",
    "list-applications": "ListApplications",
    "list-deployment-configs": "ListDeploymentConfigs",
    "list-deployment-groups": "ListDeploymentGroups",
    "list-deployment-instances": "ListDeploymentInstances",
    "list-deployment-targets": "ListDeploymentTargets",
    "list-deployments": "ListDeployments",
    "list-git-hub-account-token-names": "ListGitHubAccountTokenNames",
    "list-on-premises-instances": "ListOnPremisesInstances",
    "list-tags-for-resource": "ListTagsForResource",
    "put-lifecycle-event-hook-execution-status": "PutLifecycleEventHookExecutionStatus",
    "register-application-revision": "RegisterApplicationRevision",
    "register-on-premises-instance": "RegisterOnPremisesInstance",
    "remove-tags-from-on-premises-instances": "RemoveTagsFromOnPremisesInstances",
    "skip-wait-time-for-instance-termination": "SkipWaitTimeForInstanceTermination",
    "stop-deployment": "StopDeployment",
    "tag-resource": "TagResource",
    "untag-resource": "UntagResource",
    "update-application": "UpdateApplication",
    "update-deployment-group": "UpdateDeploymentGroup",
}

#: Entries for ``main._COMMANDS``: the generated operations, ``wait`` and ``completion``.
AWS_COMMANDS: dict[str, str] = {
    **{name: f"opendeploy.cli.aws_commands:{op}" for name, op in OPERATIONS.items()},
    "wait": "opendeploy.cli.aws_commands:wait",
    "completion": "opendeploy.cli.completion:completion",
}
