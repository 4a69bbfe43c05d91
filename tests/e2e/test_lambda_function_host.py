"""Lambda deployments on the built-in function host: real hook functions calling back.

One ``opendeploy server --function-host``: the deployment's alias shifts on the server's own
Lambda API, and the hook functions run as real processes (awslambdaric) that answer with
``boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(...)``, no setup, as on
AWS. (The schedules, stops and the restart mid-shift are covered against moto in
``test_lambda_moto.py``; this proves the loop closes with code that runs.)
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from opendeploy.testing.server import RunningServer, start_server
from tests.e2e.polling import finished_deployment, wait_for

ROLE = "arn:aws:iam::123456789012:role/lambda"
STYLE = {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
HOOK = """\
import boto3

def handler(event, context):
    boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status="{status}",
    )
"""


pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(
        tmp_path_factory.mktemp("lambda-host"),
        extra_args=("--function-host", "--minute-seconds", "0.5", "--event-timeout", "20"),
    )
    try:
        yield srv
    finally:
        srv.stop()


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", source)
    return buf.getvalue()


def _function(lam: Any, name: str, source: str) -> None:
    lam.create_function(
        FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": _zip(source)},
    )  # fmt: skip


def _deploy(cd: Any, app: str, name: str, pre: str, post: str) -> str:
    spec = (
        "version: 0.0\nResources:\n  - f:\n      Type: AWS::Lambda::Function\n"
        f"      Properties: {{Name: {name}, Alias: live, CurrentVersion: '1', "
        "TargetVersion: '2'}\n"
        f"Hooks:\n  - BeforeAllowTraffic: {pre}\n  - AfterAllowTraffic: {post}\n"
    )
    cd.create_application(applicationName=app, computePlatform="Lambda")
    cd.create_deployment_group(
        applicationName=app, deploymentGroupName="g", serviceRoleArn=ROLE, deploymentStyle=STYLE,
        autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
    )  # fmt: skip
    revision = {"revisionType": "AppSpecContent", "appSpecContent": {"content": spec}}
    deployment: str = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=revision
    )["deploymentId"]
    return deployment


def _two_versions(lam: Any, name: str) -> None:
    _function(lam, name, "def handler(event, context):\n    return 1\n")
    lam.publish_version(FunctionName=name)
    lam.update_function_code(
        FunctionName=name, ZipFile=_zip("def handler(event, context):\n    return 2\n")
    )
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")


def test_hook_functions_run_and_call_back(server: RunningServer) -> None:
    lam, cd = server.client("lambda"), server.client("codedeploy")
    _two_versions(lam, "shop")
    _function(lam, "CodeDeployHook_shop_pre", HOOK.format(status="Succeeded"))
    _function(lam, "CodeDeployHook_shop_post", HOOK.format(status="Succeeded"))
    dep = _deploy(cd, "shop", "shop", "CodeDeployHook_shop_pre", "CodeDeployHook_shop_post")
    info = finished_deployment(cd, dep, timeout=60)
    assert info["status"] == "Succeeded", info
    alias = lam.get_alias(FunctionName="shop", Name="live")
    assert alias["FunctionVersion"] == "2"
    assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    assert lam.invoke(FunctionName="shop", Qualifier="live")["Payload"].read() == b"2"


def test_a_hook_function_reporting_failed_puts_the_alias_back(server: RunningServer) -> None:
    lam, cd = server.client("lambda"), server.client("codedeploy")
    _two_versions(lam, "cart")
    _function(lam, "CodeDeployHook_cart_pre", HOOK.format(status="Succeeded"))
    _function(lam, "CodeDeployHook_cart_post", HOOK.format(status="Failed"))
    dep = _deploy(cd, "cart", "cart", "CodeDeployHook_cart_pre", "CodeDeployHook_cart_post")
    info = finished_deployment(cd, dep, timeout=60)
    assert info["status"] == "Failed", info
    assert info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert "CodeDeployHook_cart_post reported Failed" in info["errorInformation"]["message"]

    def put_back() -> bool:
        alias = lam.get_alias(FunctionName="cart", Name="live")
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
        return bool(alias["FunctionVersion"] == "1" and not weights)

    wait_for(put_back, 10, "the alias put back to version 1")
    assert lam.invoke(FunctionName="cart", Qualifier="live")["Payload"].read() == b"1"


def test_an_appspec_in_the_servers_own_s3_store_yaml_or_zipped(server: RunningServer) -> None:
    lam, cd = server.client("lambda"), server.client("codedeploy")
    s3 = server.client("s3")
    cd.create_application(applicationName="s3app", computePlatform="Lambda")
    cd.create_deployment_group(
        applicationName="s3app", deploymentGroupName="g", serviceRoleArn=ROLE,
        deploymentStyle=STYLE,
    )  # fmt: skip
    for name, bundle_type in (("fromyaml", "YAML"), ("fromzip", "zip")):
        _two_versions(lam, name)
        spec = (
            "version: 0.0\nResources:\n  - f:\n      Type: AWS::Lambda::Function\n"
            f"      Properties: {{Name: {name}, Alias: live, CurrentVersion: '1', "
            "TargetVersion: '2'}\n"
        )
        body = spec.encode() if bundle_type == "YAML" else _zip_named("appspec.yaml", spec)
        s3.put_object(Bucket="lambda-specs", Key=f"{name}/appspec", Body=body)
        location = {"bucket": "lambda-specs", "key": f"{name}/appspec", "bundleType": bundle_type}
        dep = cd.create_deployment(
            applicationName="s3app",
            deploymentGroupName="g",
            revision={"revisionType": "S3", "s3Location": location},
        )["deploymentId"]
        assert finished_deployment(cd, dep, timeout=60)["status"] == "Succeeded"
        assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "2"
    missing = {"bucket": "lambda-specs", "key": "nothing", "bundleType": "YAML"}
    dep = cd.create_deployment(
        applicationName="s3app",
        deploymentGroupName="g",
        revision={"revisionType": "S3", "s3Location": missing},
    )["deploymentId"]
    info = finished_deployment(cd, dep, timeout=30)
    assert info["errorInformation"]["code"] == "INVALID_LAMBDA_CONFIGURATION"
    assert (
        "s3://lambda-specs/nothing is not an object of this server's"
        in (info["errorInformation"]["message"])
    )


def _zip_named(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, text)
    return buf.getvalue()
