"""The Lambda API's routes when the function host is off: boto3 learns how to turn it on."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from starlette.applications import Starlette

from opendeploy.api.lambda_api import DISABLED, lambda_routes
from opendeploy.testing.server import serve_in_thread


def test_a_server_without_the_host_says_how_to_enable_it() -> None:
    app = Starlette(
        routes=lambda_routes(
            service=None, host=None, lookup_secret=lambda _k: None, key_kind=lambda _k: None
        )
    )
    with serve_in_thread(app) as url:
        client = boto3.client(
            "lambda",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="AKIAEXAMPLE",
            aws_secret_access_key="secret",
            config=Config(retries={"max_attempts": 1}),
        )
        calls: list[tuple[str, dict[str, str]]] = [
            ("list_functions", {}),
            ("invoke", {"FunctionName": "f", "Qualifier": "live"}),
        ]
        for operation, params in calls:
            with pytest.raises(ClientError) as refused:
                getattr(client, operation)(**params)
            error = refused.value.response
            assert error["Error"] == {"Code": "AccessDeniedException", "Message": DISABLED}
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "--function-host" in DISABLED
