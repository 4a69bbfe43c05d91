"""CreateDeploymentGroup, GetDeploymentGroup, BatchGetDeploymentGroups, ListDeploymentGroups,
UpdateDeploymentGroup, DeleteDeploymentGroup.

A group must be able to run on its application's compute platform, so Create and Update refuse,
with the exception AWS's model documents for the member: an ECS group without ``ecsServices``
(InvalidECSServiceException), ``ecsServices`` on another platform (the same), and EC2 or
on-premises instance selection (``ec2TagFilters``, ``ec2TagSet``: InvalidEC2TagException;
``onPremisesInstanceTagFilters``, ``onPremisesTagSet``: InvalidTagException;
``autoScalingGroups``: InvalidAutoScalingGroupException) on a Lambda or ECS group, in the words
AWS was seen to use ("For ECS deployment group, autoScalingGroups can not be specified").

``blueGreenDeploymentConfiguration`` is checked as AWS does
(InvalidBlueGreenDeploymentConfigurationException): its enums, waits of 0 to 2880 minutes,
no ``CONTINUE_DEPLOYMENT`` with a wait time, and COPY_AUTO_SCALING_GROUP with exactly one Auto
Scaling group.
"""

from __future__ import annotations

from typing import Any

from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.handlers import _common as c
from opendeploy.domain.configs import DEFAULT_CONFIG_BY_PLATFORM, PREDEFINED, ComputePlatform
from opendeploy.domain.records import (
    BlueGreenSettings,
    DeploymentStyle,
    GreenProvisioning,
    LoadBalancerInfo,
)
from opendeploy.engine.alarms.declarations import AlarmDeclarationError
from opendeploy.engine.alarms.declarations import declared as declared_alarms
from opendeploy.engine.effectors.load_balancers import declared as declared_load_balancers
from opendeploy.engine.targets import TagFilter
from opendeploy.errors import ServiceError
from opendeploy.service_errors import (
    AlarmsLimitExceededError,
    DeploymentConfigDoesNotExistError,
    DeploymentGroupNameRequiredError,
    ECSServiceMappingLimitExceededError,
    InvalidAlarmConfigError,
    InvalidAutoScalingGroupError,
    InvalidBlueGreenDeploymentConfigurationError,
    InvalidDeploymentConfigNameError,
    InvalidDeploymentGroupNameError,
    InvalidDeploymentStyleError,
    InvalidEC2TagCombinationError,
    InvalidEC2TagError,
    InvalidECSServiceError,
    InvalidLoadBalancerInfoError,
    InvalidOnPremisesTagCombinationError,
    InvalidTagError,
    InvalidTriggerConfigError,
    RoleRequiredError,
    TagSetListLimitExceededError,
    TriggerTargetsLimitExceededError,
)
from opendeploy.store.deployment_groups import does_not_exist

PAGE_SIZE = c.PAGE_SIZE

#: API member -> column, for the settings stored as they come.
_PLAIN = {
    "ec2TagFilters": "ec2_tag_filters",
    "onPremisesInstanceTagFilters": "on_premises_instance_tag_filters",
    "ec2TagSet": "ec2_tag_set",
    "onPremisesTagSet": "on_premises_tag_set",
    "triggerConfigurations": "trigger_configurations",
    "alarmConfiguration": "alarm_configuration",
    "autoRollbackConfiguration": "auto_rollback_configuration",
    "deploymentStyle": "deployment_style",
    "blueGreenDeploymentConfiguration": "blue_green_deployment_configuration",
    "loadBalancerInfo": "load_balancer_info",
    "ecsServices": "ecs_services",
    "outdatedInstancesStrategy": "outdated_instances_strategy",
    "terminationHookEnabled": "termination_hook_enabled",
    "serviceRoleArn": "service_role_arn",
    "deploymentConfigName": "deployment_config_name",
}


def group_name(value: Any) -> str:
    return c.check_name(
        value,
        field="Deployment group name",
        required=DeploymentGroupNameRequiredError,
        invalid=InvalidDeploymentGroupNameError,
    )


def config_exists(ctx: RequestContext, name: Any, platform: str | None = None) -> str:
    """A valid, existing configuration name (predefined or custom), for ``platform`` if given.

    A configuration of another compute platform cannot drive the deployment (a Server
    deployment has no traffic routing to follow, a Lambda one no healthy-host minimum), so it
    is refused with InvalidDeploymentConfigNameException, the configuration error every
    operation that takes a name documents (AWS's exact answer is not recorded).
    """
    if not isinstance(name, str) or not c.NAME_PATTERN.fullmatch(name):
        raise InvalidDeploymentConfigNameError(
            f"deploymentConfigName: {name!r} must be 1 to 100 characters "
            "of A-Z a-z 0-9 + = , . @ _ -"
        )
    if name in PREDEFINED:
        config_platform = str(PREDEFINED[name].compute_platform)
    else:
        row = ctx.store.deployment_configs.get(name)
        if row is None:
            raise DeploymentConfigDoesNotExistError(
                f"No deployment configuration found for name: {name}"
            )
        config_platform = str(row["compute_platform"] or ComputePlatform.SERVER)
    if platform is not None and config_platform != platform:
        raise InvalidDeploymentConfigNameError(
            f"The deployment configuration {name} is for the {config_platform} compute "
            f"platform and cannot be used for a {platform} deployment."
        )
    return name


def _check_filters(filters: Any, error: type[InvalidTagError] | type[InvalidEC2TagError]) -> None:
    for shape in filters or []:
        try:
            TagFilter.from_wire(shape)
        except ValueError as exc:
            raise error(f"Tag filter {shape!r}: {exc}") from None


def _check_tag_set(tag_set: Any, error: type[InvalidTagError] | type[InvalidEC2TagError]) -> None:
    groups = (tag_set or {}).get("ec2TagSetList", (tag_set or {}).get("onPremisesTagSetList", []))
    if len(groups) > 3:
        raise TagSetListLimitExceededError("A tag set may hold at most 3 tag groups.")
    for group in groups:
        _check_filters(group, error)


#: The members that select EC2 or on-premises instances, and the error AWS names for each.
_INSTANCE_SELECTION: dict[str, type[ServiceError]] = {
    "ec2TagFilters": InvalidEC2TagError,
    "ec2TagSet": InvalidEC2TagError,
    "onPremisesInstanceTagFilters": InvalidTagError,
    "onPremisesTagSet": InvalidTagError,
    "autoScalingGroups": InvalidAutoScalingGroupError,
}


def _selects(value: Any) -> bool:
    """Whether a tag filter list, tag set or group list selects anything (empty ones clear)."""
    if isinstance(value, dict):
        groups = value.get("ec2TagSetList") or value.get("onPremisesTagSetList") or []
        return any(groups)
    return bool(value)


def _check_platform(params: dict[str, Any], platform: ComputePlatform, *, creating: bool) -> None:
    """Refuse settings that cannot run on ``platform`` (see the module docstring)."""
    if platform is not ComputePlatform.SERVER:
        for member, error in _INSTANCE_SELECTION.items():
            if _selects(params.get(member)):
                raise error(f"For {platform} deployment group, {member} can not be specified")
    services = params.get("ecsServices")
    if platform is not ComputePlatform.ECS:
        if services:
            raise InvalidECSServiceError(
                f"For {platform} deployment group, ecsServices can not be specified"
            )
        return
    if (creating or "ecsServices" in params) and not services:
        raise InvalidECSServiceError(
            "For ECS deployment group, ecsServices must be specified: the Amazon ECS service "
            "(serviceName and clusterName) the deployments update"
        )
    for service in services or []:
        if not (
            isinstance(service, dict) and service.get("serviceName") and service.get("clusterName")
        ):
            raise InvalidECSServiceError(
                f"ECS service {service!r}: both serviceName and clusterName must be specified"
            )


def _check_service_mapping(
    ctx: RequestContext, services: list[dict[str, Any]] | None, *, except_group: str | None
) -> None:
    """An ECS service belongs to one deployment group at most, across applications (AWS)."""
    if not services:
        return
    pairs = [(str(s.get("clusterName")), str(s.get("serviceName"))) for s in services]
    taken = ctx.store.deployment_groups.holding_ecs_services(pairs, except_group=except_group)
    if taken:
        cluster, service, group_id = taken[0]
        raise ECSServiceMappingLimitExceededError(
            f"The Amazon ECS service {service} in cluster {cluster} is already associated with "
            f"deployment group {group_id}. An Amazon ECS service can be associated with only "
            "one deployment group."
        )


def _check_blue_green(params: dict[str, Any]) -> None:
    if params.get("blueGreenDeploymentConfiguration") is None:
        return
    try:
        settings = BlueGreenSettings.from_wire(params["blueGreenDeploymentConfiguration"])
    except ValueError as e:
        raise InvalidBlueGreenDeploymentConfigurationError(str(e)) from None
    copies = settings.provisioning is GreenProvisioning.COPY_AUTO_SCALING_GROUP
    if copies and len(params.get("autoScalingGroups") or []) != 1:
        # AWS's words, typo included (hashicorp/terraform-provider-aws#2233).
        raise InvalidBlueGreenDeploymentConfigurationError(
            "Exactly one AutoScaling group must be specifed when the green fleet provisioning "
            "option is COPY_AUTO_SCALING_GROUP"
        )


def settings_from(
    ctx: RequestContext, params: dict[str, Any], platform: ComputePlatform, *, creating: bool
) -> dict[str, Any]:
    """The column values of the settings given in ``params``, validated as AWS does for a
    group of ``platform`` (``creating``: the whole group is given, not changes to it)."""
    _check_platform(params, platform, creating=creating)
    if params.get("ec2TagFilters") and params.get("ec2TagSet"):
        raise InvalidEC2TagCombinationError("ec2TagFilters and ec2TagSet cannot both be specified.")
    if params.get("onPremisesInstanceTagFilters") and params.get("onPremisesTagSet"):
        raise InvalidOnPremisesTagCombinationError(
            "onPremisesInstanceTagFilters and onPremisesTagSet cannot both be specified."
        )
    _check_filters(params.get("ec2TagFilters"), InvalidEC2TagError)
    _check_filters(params.get("onPremisesInstanceTagFilters"), InvalidTagError)
    _check_tag_set(params.get("ec2TagSet"), InvalidEC2TagError)
    _check_tag_set(params.get("onPremisesTagSet"), InvalidTagError)
    check_alarm_configuration(ctx, params.get("alarmConfiguration"), "alarmConfiguration")
    style = params.get("deploymentStyle")
    try:
        DeploymentStyle.from_wire(style)
    except ValueError:
        raise InvalidDeploymentStyleError(
            f"deploymentStyle: {style!r} is not a valid style"
        ) from None
    _check_blue_green(params)
    _check_target_groups(ctx, params.get("loadBalancerInfo"))
    _check_triggers(params.get("triggerConfigurations"))
    if params.get("deploymentConfigName") is not None:
        config_exists(ctx, params["deploymentConfigName"], str(platform))
    out = {column: params[member] for member, column in _PLAIN.items() if member in params}
    if "autoScalingGroups" in params:
        out["auto_scaling_groups"] = [{"name": n} for n in params["autoScalingGroups"] or []]
    return out


def _summary(ctx: RequestContext, deployment_id: str | None) -> dict[str, Any] | None:
    if not deployment_id:
        return None
    brief = ctx.store.deployments.brief([deployment_id]).get(deployment_id)
    if brief is None:
        return None
    return {
        "deploymentId": deployment_id,
        "status": brief["status"],
        "endTime": brief["complete_time"],
        "createTime": brief["create_time"],
    }


def default_style(platform: str) -> dict[str, str]:
    """The deploymentStyle AWS reports for a group or deployment that was given none."""
    if platform == "Server":
        return {"deploymentType": "IN_PLACE", "deploymentOption": "WITHOUT_TRAFFIC_CONTROL"}
    return {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}


def _defaults(platform: str) -> dict[str, Any]:
    """The members AWS always returns in DeploymentGroupInfo, with the values of an unset one
    (aws-cli's batch-get-deployment-groups example): clients read them without checking."""
    out: dict[str, Any] = {
        "deploymentStyle": default_style(platform),
        "autoRollbackConfiguration": {"enabled": False},
        "alarmConfiguration": {"enabled": False, "ignorePollAlarmFailure": False, "alarms": []},
        "triggerConfigurations": [],
        "autoScalingGroups": [],
    }
    if platform == "Server":
        out.update(
            {
                "ec2TagFilters": [],
                "onPremisesInstanceTagFilters": [],
                "onPremisesTagSet": {"onPremisesTagSetList": []},
                "outdatedInstancesStrategy": "UPDATE",
            }
        )
    return out


def render(ctx: RequestContext, app: str, row: dict[str, Any]) -> dict[str, Any]:
    """DeploymentGroupInfo."""
    info = {member: row[column] for member, column in _PLAIN.items()}
    for member, value in _defaults(row["compute_platform"]).items():
        if info.get(member) is None:
            info[member] = value
    info.update(
        {
            "applicationName": app,
            "deploymentGroupId": row["deployment_group_id"],
            "deploymentGroupName": row["name"],
            "computePlatform": row["compute_platform"],
            "autoScalingGroups": row["auto_scaling_groups"] or [],
            "targetRevision": row["target_revision"],
            "lastSuccessfulDeployment": _summary(ctx, row["last_successful_deployment_id"]),
            "lastAttemptedDeployment": _summary(ctx, row["last_attempted_deployment_id"]),
            "terminationHookEnabled": bool(row["termination_hook_enabled"]),
        }
    )
    return info


def create_deployment_group(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_name = c.app_name(params.get("applicationName"))
    name = group_name(params.get("deploymentGroupName"))
    app = ctx.store.applications.require(app_name)
    if not params.get("serviceRoleArn"):
        raise RoleRequiredError("The service role ARN was not specified.")
    platform = ComputePlatform(app["compute_platform"])
    settings = settings_from(ctx, params, platform, creating=True)
    _check_service_mapping(ctx, params.get("ecsServices"), except_group=None)
    settings.setdefault("deployment_config_name", DEFAULT_CONFIG_BY_PLATFORM[platform])
    settings["compute_platform"] = str(platform)
    row = ctx.store.deployment_groups.create(
        application_id=app["application_id"],
        app_name=app_name,
        name=name,
        settings=settings,
        now=c.now(),
    )
    tags = c.tag_pairs(params.get("tags"))
    if tags:
        ctx.store.tags.tag(c.deployment_group_arn(ctx, app_name, name), tags)
    return {"deploymentGroupId": row["deployment_group_id"]}


def get_deployment_group(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_name = c.app_name(params.get("applicationName"))
    name = group_name(params.get("deploymentGroupName"))
    app = ctx.store.applications.require(app_name)
    row = ctx.store.deployment_groups.get(app["application_id"], name)
    if row is None:
        raise does_not_exist(app_name, name)
    return {"deploymentGroupInfo": render(ctx, app_name, row)}


def batch_get_deployment_groups(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_name = c.app_name(params.get("applicationName"))
    names = c.check_batch(
        params.get("deploymentGroupNames"), limit=100, what="deployment group names"
    )
    if not names:
        raise DeploymentGroupNameRequiredError("The deployment group names were not specified.")
    for name in names:
        group_name(name)
    app = ctx.store.applications.require(app_name)
    rows = {
        r["name"]: r for r in ctx.store.deployment_groups.get_many(app["application_id"], names)
    }
    missing = [n for n in names if n not in rows]
    return {
        "deploymentGroupsInfo": [render(ctx, app_name, rows[n]) for n in names if n in rows],
        "errorMessage": (f"Deployment groups not found: {', '.join(missing)}" if missing else ""),
    }


def list_deployment_groups(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_name = c.app_name(params.get("applicationName"))
    app = ctx.store.applications.require(app_name)
    after = c.decode_token(params.get("nextToken"))
    names, more = ctx.store.deployment_groups.list_names(
        app["application_id"], after=after, limit=PAGE_SIZE
    )
    return {
        "applicationName": app_name,
        "deploymentGroups": names,
        "nextToken": c.page(names, more),
    }


def update_deployment_group(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_name = c.app_name(params.get("applicationName"))
    current = group_name(params.get("currentDeploymentGroupName"))
    new = params.get("newDeploymentGroupName")
    if new is not None:
        new = group_name(new)
    app = ctx.store.applications.require(app_name)
    settings = settings_from(ctx, params, ComputePlatform(app["compute_platform"]), creating=False)
    if params.get("ecsServices"):
        row = ctx.store.deployment_groups.get(app["application_id"], current)
        held_by = None if row is None else str(row["deployment_group_id"])
        _check_service_mapping(ctx, params["ecsServices"], except_group=held_by)
    # Giving one kind of EC2 selection clears the other, as in AWS.
    for member, other in (
        ("ec2_tag_filters", "ec2_tag_set"),
        ("ec2_tag_set", "ec2_tag_filters"),
        ("on_premises_instance_tag_filters", "on_premises_tag_set"),
        ("on_premises_tag_set", "on_premises_instance_tag_filters"),
    ):
        if settings.get(member):
            settings.setdefault(other, None)
    ctx.store.deployment_groups.update(
        application_id=app["application_id"],
        app_name=app_name,
        current_name=current,
        new_name=new,
        settings=settings,
    )
    if new and new != current:
        old_arn = c.deployment_group_arn(ctx, app_name, current)
        tags = ctx.store.tags.list_tags(old_arn)
        if tags:
            ctx.store.tags.tag(c.deployment_group_arn(ctx, app_name, new), tags)
            ctx.store.tags.drop([old_arn])
    return {"hooksNotCleanedUp": []}


def delete_deployment_group(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_name = c.app_name(params.get("applicationName"))
    name = group_name(params.get("deploymentGroupName"))
    app = ctx.store.applications.require(app_name)
    ctx.store.deployment_groups.delete(app["application_id"], name)
    ctx.store.tags.drop([c.deployment_group_arn(ctx, app_name, name)])
    return {"hooksNotCleanedUp": []}


HANDLERS: dict[str, Handler] = {
    "CreateDeploymentGroup": create_deployment_group,
    "GetDeploymentGroup": get_deployment_group,
    "BatchGetDeploymentGroups": batch_get_deployment_groups,
    "ListDeploymentGroups": list_deployment_groups,
    "UpdateDeploymentGroup": update_deployment_group,
    "DeleteDeploymentGroup": delete_deployment_group,
}


#: AlarmConfiguration's limits (API Reference: up to 10 alarms, names of 1 to 255 characters).
MAX_ALARMS = 10
MAX_ALARM_NAME = 255


def check_alarm_configuration(ctx: RequestContext, raw: Any, member: str) -> None:
    """An ``alarmConfiguration`` (or a deployment's ``overrideAlarmConfiguration``) as AWS
    checks it (InvalidAlarmConfigException: empty, too long or duplicate names, enabled with no
    alarm; AlarmsLimitExceededException past 10), and, when the server's ``--alarms`` file says
    names must be declared, every name declared there (the message names those that are)."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise InvalidAlarmConfigError(f"{member}: expected a structure, got {raw!r}")
    alarms = raw.get("alarms") or []
    if not isinstance(alarms, list):
        raise InvalidAlarmConfigError(f"{member}.alarms: expected a list")
    if len(alarms) > MAX_ALARMS:
        raise AlarmsLimitExceededError(
            "The maximum number of alarms for a deployment group (10) was exceeded."
        )
    names: list[str] = []
    for alarm in alarms:
        name = alarm.get("name") if isinstance(alarm, dict) else None
        if not isinstance(name, str) or not 0 < len(name) <= MAX_ALARM_NAME:
            raise InvalidAlarmConfigError(
                f"{member}: alarm name {name!r} must be 1 to {MAX_ALARM_NAME} characters long."
            )
        if name in names:
            raise InvalidAlarmConfigError(f"{member}: alarm {name} is listed more than once.")
        names.append(name)
    if raw.get("enabled") and not names:
        raise InvalidAlarmConfigError(
            f"{member}: alarms are enabled but no alarm is specified; add an alarm or disable "
            "the alarm configuration."
        )
    path = ctx.settings.alarms_file
    if path is None or not names:
        return
    try:
        declarations = declared_alarms(path)
    except AlarmDeclarationError as e:
        raise InvalidAlarmConfigError(
            f"The server's alarm declarations cannot be used: {e}"
        ) from None
    unknown = [n for n in names if declarations.resolve(n) is None]
    if unknown:
        known = ", ".join(sorted(declarations.alarms)) or "none"
        raise InvalidAlarmConfigError(
            f"Alarm {', '.join(unknown)} is not declared on this server (--alarms {path}, "
            f"require_declared: true); declared alarms: {known}."
        )


def _check_target_groups(ctx: RequestContext, raw: Any) -> None:
    """Target group names must be declared when the server declares its load balancers
    (``--load-balancers``); InvalidLoadBalancerInfoException names the unknown and the known."""
    path = ctx.settings.load_balancers_file
    if raw is None or path is None:
        return
    info = LoadBalancerInfo.from_wire(raw)
    declared = declared_load_balancers(path)
    unknown = declared.unknown(list(info.target_groups))
    if unknown:
        known = ", ".join(sorted(declared.target_groups)) or "none"
        raise InvalidLoadBalancerInfoError(
            f"Target group {', '.join(unknown)} is not declared on this server "
            f"(--load-balancers {path}); declared target groups: {known}."
        )
    if info.elb_names:
        raise InvalidLoadBalancerInfoError(
            f"Classic load balancer {', '.join(info.elb_names)}: this server drives target "
            "groups only; name them in targetGroupInfoList."
        )


#: AWS's limit of triggers per deployment group.
MAX_TRIGGERS = 10


def _check_triggers(raw: Any) -> None:
    """``triggerConfigurations`` as AWS checks them: at most 10 (TriggerTargetsLimitExceeded-
    Exception); each named, once, and aimed at an SNS topic ARN (InvalidTriggerConfigException).
    Names are unique because each (event, trigger name) is one notification delivery."""
    from opendeploy.engine.notifications.declaration import SNS_TOPIC_ARN

    triggers = raw or []
    if len(triggers) > MAX_TRIGGERS:
        raise TriggerTargetsLimitExceededError(
            f"The maximum number of triggers for a deployment group ({MAX_TRIGGERS}) was "
            f"exceeded: {len(triggers)} given."
        )
    names: set[str] = set()
    for i, trigger in enumerate(triggers):
        name = str(trigger.get("triggerName") or "")
        arn = str(trigger.get("triggerTargetArn") or "")
        where = f"triggerConfigurations[{i}]"
        if not name:
            raise InvalidTriggerConfigError(f"{where}.triggerName: a trigger needs a name.")
        if name in names:
            raise InvalidTriggerConfigError(
                f"{where}.triggerName: {name!r} names two triggers of the group."
            )
        names.add(name)
        if not SNS_TOPIC_ARN.match(arn):
            raise InvalidTriggerConfigError(
                f"{where}.triggerTargetArn: {arn!r} is not a valid Topic ARN "
                "(arn:aws:sns:REGION:ACCOUNT:NAME)."
            )
