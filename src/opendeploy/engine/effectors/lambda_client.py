"""The one place the server's AWS Lambda client is built.

boto3's standard configuration decides where it goes and as whom: the credential chain
(``AWS_ACCESS_KEY_ID``…, ``AWS_PROFILE``, instance roles), the region (``AWS_REGION`` /
``AWS_DEFAULT_REGION`` / the profile's), and the endpoint (``AWS_ENDPOINT_URL_LAMBDA``, or
``AWS_ENDPOINT_URL``; AWS's own without them). So the server drives AWS Lambda, LocalStack, a
``moto_server`` or a built-in function host with no OpenDeploy option. Built lazily and shared
(boto3 clients are thread-safe; sessions are not, hence one session per client).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from opendeploy.built_once import BuiltOnce

#: Short timeouts and few retries: a step retries by itself (its lease) and must not hang on an
#: endpoint that is gone. Standard retries still cover throttling.
CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=30,
    retries={"max_attempts": 3, "mode": "standard"},
)

#: The server's boto3 ``lambda`` client (botocore's NoRegionError if no region is set).
lambda_client: BuiltOnce[Any] = BuiltOnce(
    lambda: boto3.session.Session().client("lambda", config=CLIENT_CONFIG)
)
