"""CreateDeploymentConfig, GetDeploymentConfig, ListDeploymentConfigs, DeleteDeploymentConfig."""

from __future__ import annotations

from typing import Any

from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.handlers import _common as c
from opendeploy.api.handlers.applications import compute_platform
from opendeploy.domain.configs import (
    PREDEFINED,
    SETTABLE_MINIMUM_HEALTHY_HOSTS_TYPES,
    DeploymentConfig,
    InvalidTrafficRouting,
    TrafficRouting,
    is_predefined,
)
from opendeploy.service_errors import (
    DeploymentConfigDoesNotExistError,
    DeploymentConfigNameRequiredError,
    InvalidDeploymentConfigNameError,
    InvalidMinimumHealthyHostValueError,
    InvalidOperationError,
    InvalidTrafficRoutingConfigurationError,
)

PAGE_SIZE = c.PAGE_SIZE


def config_name(value: Any) -> str:
    return c.check_name(
        value,
        field="Deployment config name",
        required=DeploymentConfigNameRequiredError,
        invalid=InvalidDeploymentConfigNameError,
    )


def render_predefined(config: DeploymentConfig) -> dict[str, Any]:
    info: dict[str, Any] = {
        "deploymentConfigId": config.config_id,
        "deploymentConfigName": config.name,
        "computePlatform": str(config.compute_platform),
        "createTime": None,
    }
    if config.minimum_healthy_hosts is not None:
        mhh = config.minimum_healthy_hosts
        info["minimumHealthyHosts"] = {"type": str(mhh.type), "value": mhh.value}
    if config.traffic_routing is not None:
        info["trafficRoutingConfig"] = config.traffic_routing.to_wire()
    return info


def render(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "deploymentConfigId": row["deployment_config_id"],
        "deploymentConfigName": row["name"],
        "minimumHealthyHosts": row["minimum_healthy_hosts"],
        "createTime": row["create_time"],
        "computePlatform": row["compute_platform"],
        "trafficRoutingConfig": row["traffic_routing_config"],
        "zonalConfig": row["zonal_config"],
    }


def _check_minimum_healthy_hosts(mhh: Any) -> None:
    kind, value = (mhh or {}).get("type"), (mhh or {}).get("value")
    valid_type = kind in SETTABLE_MINIMUM_HEALTHY_HOSTS_TYPES
    if not valid_type or not isinstance(value, int) or value < 0:
        raise InvalidMinimumHealthyHostValueError(
            f"minimumHealthyHosts: {mhh!r} needs type HOST_COUNT or FLEET_PERCENT and a value >= 0"
        )
    if kind == "FLEET_PERCENT" and value > 99:
        raise InvalidMinimumHealthyHostValueError(
            f"minimumHealthyHosts: FLEET_PERCENT {value} must be between 0 and 99"
        )


def traffic_routing(value: Any) -> TrafficRouting:
    """A ``trafficRoutingConfig`` checked by AWS's rules (:class:`TrafficRouting`)."""
    try:
        return TrafficRouting.from_wire(value)
    except InvalidTrafficRouting as exc:
        raise InvalidTrafficRoutingConfigurationError(str(exc)) from None


def create_deployment_config(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = config_name(params.get("deploymentConfigName"))
    if is_predefined(name):
        raise InvalidDeploymentConfigNameError(
            f"Deployment config name {name}: the prefix CodeDeployDefault. is reserved"
        )
    platform = compute_platform(params.get("computePlatform"))
    mhh = params.get("minimumHealthyHosts")
    routing = params.get("trafficRoutingConfig")
    if platform == "Server" or mhh is not None:
        _check_minimum_healthy_hosts(mhh)
    if routing is not None:
        # Stored in the one shape GetDeploymentConfig answers (a stray member of the other
        # time-based type is dropped).
        routing = traffic_routing(routing).to_wire()
    row = ctx.store.deployment_configs.create(
        name=name,
        compute_platform=platform,
        minimum_healthy_hosts=mhh,
        traffic_routing_config=routing,
        zonal_config=params.get("zonalConfig"),
        now=c.now(),
    )
    return {"deploymentConfigId": row["deployment_config_id"]}


def get_deployment_config(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = config_name(params.get("deploymentConfigName"))
    if name in PREDEFINED:
        return {"deploymentConfigInfo": render_predefined(PREDEFINED[name])}
    row = ctx.store.deployment_configs.get(name)
    if row is None:
        raise DeploymentConfigDoesNotExistError(
            f"No deployment configuration found for name: {name}"
        )
    return {"deploymentConfigInfo": render(row)}


def list_deployment_configs(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    after = c.decode_token(params.get("nextToken"))
    names = [*PREDEFINED, *ctx.store.deployment_configs.list_names()]
    chunk, more = c.page_after(names, after, PAGE_SIZE)
    return {"deploymentConfigsList": chunk, "nextToken": c.page(chunk, more)}


def delete_deployment_config(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = config_name(params.get("deploymentConfigName"))
    if is_predefined(name):
        raise InvalidOperationError("Predefined configurations cannot be deleted")
    ctx.store.deployment_configs.delete(name)
    return {}


HANDLERS: dict[str, Handler] = {
    "CreateDeploymentConfig": create_deployment_config,
    "GetDeploymentConfig": get_deployment_config,
    "ListDeploymentConfigs": list_deployment_configs,
    "DeleteDeploymentConfig": delete_deployment_config,
}
