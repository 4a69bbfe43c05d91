"""The CodeDeploy Command API: what host agents speak (PollHostCommand … PutHostCommandComplete).

A second :class:`~opendeploy.api.app.ServiceBinding` next to the control API, on the same URL:
awsJson1_1, ``X-Amz-Target: CodeDeployCommandService_v20141006.<Op>`` (and the "secure" variant's
``CodeDeployCommandService``), SigV4 service ``codedeploy-commands`` (or
``codedeploy-commands-secure``). The model is
``data/codedeploy-commands/2014-10-06/service-2.json``, the file the agent's botocore client loads.
"""

from __future__ import annotations

from functools import cache

from opendeploy.api.model import DATA_DIR, ServiceSpec, load_service

COMMANDS_MODEL_PATH = DATA_DIR / "codedeploy-commands" / "2014-10-06" / "service-2.json"


@cache
def command_service() -> ServiceSpec:
    """The Command API spec, accepting the default and the "secure" prefixes and signing names."""
    return load_service(
        COMMANDS_MODEL_PATH,
        extra_target_prefixes=frozenset({"CodeDeployCommandService"}),
        extra_signing_names=frozenset({"codedeploy-commands-secure"}),
    )
