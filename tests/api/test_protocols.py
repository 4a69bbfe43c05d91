"""Both wire protocols through real boto3 against the app served by uvicorn on loopback.

The handlers here are test doubles registered in the test (the real ones have their own tests):
they echo what the wire layer decoded, so these tests check decoding, validation, serialization
and error rendering, not CodeDeploy behaviour.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import boto3
import botocore.session
import cbor2
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from opendeploy.api.app import ServiceBinding, create_app
from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.model import codedeploy_service
from opendeploy.service_errors import ApplicationAlreadyExistsError
from opendeploy.settings import ServerSettings
from opendeploy.testing.server import serve_in_thread

KEY_ID = "AKIAPROTOCOLTEST0001"
SECRET = "protocol-test-secret-0123456789abcdefghij"
CREATED = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
SEEN: list[tuple[str, dict[str, Any], RequestContext]] = []


def _record(name: str, ctx: RequestContext, params: dict[str, Any]) -> None:
    SEEN.append((name, params, ctx))


def create_application(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    _record("CreateApplication", ctx, params)
    if params["applicationName"] == "taken":
        raise ApplicationAlreadyExistsError("Application taken already exists")
    return {"applicationId": "0f0e0d0c-0000-0000-0000-000000000001"}


def get_application(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    _record("GetApplication", ctx, params)
    if params["applicationName"] == "boom":
        raise RuntimeError("a bug in a handler")
    return {
        "application": {
            "applicationId": "0f0e0d0c-0000-0000-0000-000000000001",
            "applicationName": params["applicationName"],
            "createTime": CREATED,
            "linkedToGitHub": False,
            "gitHubAccountName": None,  # None values are dropped on the wire
            "computePlatform": "Server",
        }
    }


def list_applications(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    names = ["a", "b", "c", "d", "e"]
    start = int(params.get("nextToken", "0"))
    page = names[start : start + 2]
    token = str(start + 2) if start + 2 < len(names) else None
    return {"applications": page, "nextToken": token}


#: Set from the request's ``x-test-note`` header (create_app's ``context_headers``).
NOTE: ContextVar[str | None] = ContextVar("note", default=None)
NOTES: list[str | None] = []


def list_deployments(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    _record("ListDeployments", ctx, params)
    NOTES.append(NOTE.get())
    return {"deployments": []}


def delete_application(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    return {}


def get_deployment_config(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"deploymentConfigInfo": {"deploymentConfigName": "x", "unknownMember": 1}}


HANDLERS: dict[str, Handler] = {
    "CreateApplication": create_application,
    "GetApplication": get_application,
    "ListApplications": list_applications,
    "ListDeployments": list_deployments,
    "DeleteApplication": delete_application,
    "GetDeploymentConfig": get_deployment_config,
}


def _app(clock_offset: timedelta = timedelta()) -> Any:
    settings = ServerSettings(data_dir=Path("/nonexistent"), database_url="sqlite://")
    return create_app(
        services=[ServiceBinding(codedeploy_service(), HANDLERS)],
        lookup_secret={KEY_ID: SECRET}.get,
        context_factory=lambda key, rid: RequestContext(
            store=cast(Any, None), settings=settings, principal=key, request_id=rid
        ),
        clock=lambda: datetime.now(UTC) + clock_offset,
        context_headers={b"x-test-note": NOTE},
    )


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with serve_in_thread(_app()) as url:
        yield url


SENT: list[Any] = []


def _client(
    endpoint: str,
    protocol: str,
    data_path: Path | None = None,
    *,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    **config: Any,
) -> Any:
    core = botocore.session.get_session()
    if protocol == "cbor":
        assert data_path is not None
        core.set_config_variable("data_path", str(data_path))
    session = boto3.session.Session(botocore_session=core)
    client = session.client(
        "codedeploy",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}, **config),
    )
    client.meta.events.register(
        "before-send.codedeploy.*", lambda request, **_: SENT.append(request)
    )
    return client


@pytest.fixture(params=["json", "cbor"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(endpoint: str, protocol: str, cbor_data_path: Path) -> Any:
    SEEN.clear()
    SENT.clear()
    return _client(endpoint, protocol, cbor_data_path)


def test_requests_go_out_in_the_chosen_protocol_and_responses_say_so(
    client: Any, protocol: str
) -> None:
    response = client.create_application(applicationName="web")
    assert response["applicationId"] == "0f0e0d0c-0000-0000-0000-000000000001"
    sent = SENT[-1]
    headers = {
        k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in sent.headers.items()
    }
    answer = response["ResponseMetadata"]["HTTPHeaders"]
    if protocol == "cbor":
        assert sent.url.endswith("/service/CodeDeploy_20141006/operation/CreateApplication")
        assert headers["content-type"] == "application/cbor"
        assert cbor2.loads(sent.body) == {"applicationName": "web"}
        assert answer["content-type"] == "application/cbor"
        assert answer["smithy-protocol"] == "rpc-v2-cbor"
    else:
        assert headers["x-amz-target"] == "CodeDeploy_20141006.CreateApplication"
        assert answer["content-type"] == "application/x-amz-json-1.1"
    assert response["ResponseMetadata"]["RequestId"] == answer["x-amzn-requestid"]
    name, params, ctx = SEEN[-1]
    assert (name, params) == ("CreateApplication", {"applicationName": "web"})
    assert ctx.principal == KEY_ID and ctx.request_id == response["ResponseMetadata"]["RequestId"]
    # A random UUID, as AWS's request ids are.
    request_id = uuid.UUID(ctx.request_id)
    assert (request_id.version, request_id.variant) == (4, uuid.RFC_4122)
    assert str(request_id) == ctx.request_id


def test_timestamps_round_trip_as_aware_datetimes(client: Any) -> None:
    info = client.get_application(applicationName="web")["application"]
    assert info["createTime"] == CREATED
    assert info["linkedToGitHub"] is False
    assert "gitHubAccountName" not in info
    client.list_deployments(createTimeRange={"start": datetime(2024, 1, 1, tzinfo=UTC)})
    start = SEEN[-1][1]["createTimeRange"]["start"]
    assert start == datetime(2024, 1, 1, tzinfo=UTC) and start.tzinfo is not None


def test_pagination_follows_next_token(client: Any) -> None:
    pages = list(client.get_paginator("list_applications").paginate())
    assert [name for page in pages for name in page["applications"]] == ["a", "b", "c", "d", "e"]
    assert "nextToken" not in pages[-1]


def test_operation_without_output_answers_success(client: Any) -> None:
    response = client.delete_application(applicationName="web")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_handler_error_is_the_modeled_exception(client: Any) -> None:
    with pytest.raises(client.exceptions.ApplicationAlreadyExistsException) as caught:
        client.create_application(applicationName="taken")
    error = caught.value.response
    assert error["Error"] == {
        "Code": "ApplicationAlreadyExistsException",
        "Message": "Application taken already exists",
    }
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert (
        error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"]
        == "ApplicationAlreadyExistsException"
    )
    assert error["ResponseMetadata"]["RequestId"]


def test_pattern_violation_uses_the_operations_specific_code_and_names_the_field(
    client: Any,
) -> None:
    with pytest.raises(ClientError) as caught:
        client.get_application(applicationName="not a valid name!")
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidApplicationNameException"
    assert (
        "'applicationName'" in error["Message"] and "regular expression pattern" in error["Message"]
    )


def test_length_violation_names_the_field_and_limit(client: Any) -> None:
    with pytest.raises(ClientError) as caught:
        client.create_application(applicationName="x" * 101)
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidApplicationNameException"
    assert "length less than or equal to 100" in error["Message"]


def test_enum_violation_uses_the_specific_code(client: Any) -> None:
    with pytest.raises(ClientError) as caught:
        client.create_application(applicationName="web", computePlatform="Mainframe")
    assert caught.value.response["Error"]["Code"] == "InvalidComputePlatformException"


def test_nested_violation_falls_back_to_the_generic_code_naming_the_path(client: Any) -> None:
    with pytest.raises(ClientError) as caught:
        client.list_deployments(includeOnlyStatuses=["Succeeded", "Sideways"])
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidDeploymentStatusException"
    assert "'includeOnlyStatuses[1]'" in error["Message"]


def test_missing_and_mistyped_members_past_client_validation(
    endpoint: str, protocol: str, cbor_data_path: Path
) -> None:
    client = _client(endpoint, protocol, cbor_data_path, parameter_validation=False)
    with pytest.raises(ClientError) as caught:
        client.get_application()
    assert caught.value.response["Error"]["Code"] == "ApplicationNameRequiredException"
    assert "'applicationName'" in caught.value.response["Error"]["Message"]


@pytest.mark.parametrize("protocol", ["json", "cbor"])
def test_mistyped_member_names_the_field_and_uses_the_specific_code(
    endpoint: str, protocol: str
) -> None:
    document = {"applicationName": "web", "tags": "not-a-list"}
    if protocol == "json":
        target = {"X-Amz-Target": "CodeDeploy_20141006.CreateApplication"}
        response = _signed_raw(endpoint, json.dumps(document).encode(), "/", target)
        error = response.json()
    else:
        path = "/service/CodeDeploy_20141006/operation/CreateApplication"
        response = _signed_raw(endpoint, cbor2.dumps(document), path, {})
        error = cbor2.loads(response.content)
    assert response.status_code == 400
    assert error["__type"] == "InvalidTagsToAddException"
    assert "'tags'" in error["message"] and "must be a list" in error["message"]


def test_a_context_header_reaches_the_handler_for_that_call_only(
    endpoint: str, protocol: str, cbor_data_path: Path
) -> None:
    client = _client(endpoint, protocol, cbor_data_path)
    long_note = "first " + "x" * 100
    notes = iter([long_note, None])

    def add_note(request: Any, **_: Any) -> None:
        if (note := next(notes)) is not None:
            request.headers["X-Test-Note"] = note

    client.meta.events.register("before-sign.codedeploy.ListDeployments", add_note)
    NOTES.clear()
    client.list_deployments()
    client.list_deployments()
    # Cut at 64 characters; the next call, without the header, sees none.
    seen = list(NOTES)
    assert seen == [long_note[:64], None]


def test_unexpected_exception_is_a_500_internal_failure(
    endpoint: str, protocol: str, cbor_data_path: Path
) -> None:
    client = _client(endpoint, protocol, cbor_data_path)
    with pytest.raises(ClientError) as caught:
        client.get_application(applicationName="boom")
    response = caught.value.response
    assert response["Error"]["Code"] == "InternalFailure"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert response["ResponseMetadata"]["RequestId"] in response["Error"]["Message"]


def test_handler_output_outside_the_shape_is_a_server_fault(client: Any) -> None:
    with pytest.raises(ClientError) as caught:
        client.get_deployment_config(deploymentConfigName="x")
    assert caught.value.response["Error"]["Code"] == "InternalFailure"


def test_operation_without_handler_is_refused_clearly(client: Any) -> None:
    with pytest.raises(ClientError) as caught:
        client.delete_git_hub_account_token(tokenName="t")
    error = caught.value.response["Error"]
    assert error["Code"] == "UnknownOperationException"
    assert "DeleteGitHubAccountToken" in error["Message"] and "not implemented" in error["Message"]


def test_unsigned_request_is_missing_the_authentication_token(
    endpoint: str, protocol: str, cbor_data_path: Path
) -> None:
    client = _client(endpoint, protocol, cbor_data_path, signature_version=UNSIGNED)
    with pytest.raises(ClientError) as caught:
        client.list_applications()
    assert caught.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"


def test_wrongly_signed_request_is_an_invalid_signature(
    endpoint: str, protocol: str, cbor_data_path: Path
) -> None:
    client = _client(endpoint, protocol, cbor_data_path, secret="wrong-secret")
    with pytest.raises(ClientError) as caught:
        client.list_applications()
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_unknown_access_key_is_an_unrecognized_client(
    endpoint: str, protocol: str, cbor_data_path: Path
) -> None:
    client = _client(endpoint, protocol, cbor_data_path, key_id="AKIANOTKNOWN00000000")
    with pytest.raises(ClientError) as caught:
        client.list_applications()
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_request_signed_more_than_15_minutes_ago_has_expired(cbor_data_path: Path) -> None:
    with serve_in_thread(_app(clock_offset=timedelta(minutes=16))) as late_endpoint:
        client = _client(late_endpoint, "json")
        with pytest.raises(ClientError) as caught:
            client.list_applications()
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidSignatureException"
    assert error["Message"].startswith("Signature expired")


def test_bad_json_body_is_a_serialization_error(endpoint: str) -> None:
    response = _signed_raw(
        endpoint, b"{not json", "/", {"X-Amz-Target": "CodeDeploy_20141006.ListApplications"}
    )
    assert response.status_code == 400
    assert response.json()["__type"] == "SerializationException"
    assert response.headers["x-amzn-errortype"] == "SerializationException"


def test_bad_cbor_body_is_a_serialization_error_in_cbor(endpoint: str) -> None:
    path = "/service/CodeDeploy_20141006/operation/ListApplications"
    response = _signed_raw(endpoint, b"\xff\x00", path, {"smithy-protocol": "rpc-v2-cbor"})
    assert response.status_code == 400
    assert response.headers["smithy-protocol"] == "rpc-v2-cbor"
    assert cbor2.loads(response.content)["__type"] == "SerializationException"


def test_unknown_target_is_an_unknown_operation(endpoint: str) -> None:
    response = _signed_raw(
        endpoint, b"{}", "/", {"X-Amz-Target": "CodeDeploy_20141006.LaunchRockets"}
    )
    assert response.json()["__type"] == "UnknownOperationException"


def test_healthz_answers_without_credentials(endpoint: str) -> None:
    assert httpx.get(f"{endpoint}/healthz").json() == {"status": "ok"}


def test_post_slash_answers_with_its_headers_and_other_methods_are_not_allowed(
    endpoint: str,
) -> None:
    # POST / is answered before Starlette's routing (the fast path every agent call takes):
    # the answer still carries the protocol's headers and an exact length, and GET / is still
    # refused by the router.
    response = _signed_raw(
        endpoint, b"{}", "/", {"X-Amz-Target": "CodeDeploy_20141006.ListApplications"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-amz-json-1.1"
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["x-amzn-requestid"]
    assert "applications" in response.json()
    assert httpx.get(f"{endpoint}/").status_code == 405


def _signed_raw(endpoint: str, body: bytes, path: str, headers: dict[str, str]) -> httpx.Response:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=f"{endpoint}{path}", data=body, headers=headers)
    SigV4Auth(Credentials(KEY_ID, SECRET), "codedeploy", "us-east-1").add_auth(request)
    return httpx.post(f"{endpoint}{path}", content=body, headers=dict(request.headers.items()))
