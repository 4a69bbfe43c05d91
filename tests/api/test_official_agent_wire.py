"""The server as the official agent meets it, checked from the Ruby stack that agent runs on.

``ruby/official_agent_wire.rb`` (ours) does what the official agent does at start-up and per
command: a TLS probe with the endpoint certificate's name pinned, the Command API calls signed by
aws-sigv4 (aws-sdk-core's signer) in both API variants (``codedeploy-commands`` and, with
``:enable_auth_policy:``, ``codedeploy-commands-secure``), and the strict PKCS#7 check of the
deployment specification with Ruby's OpenSSL. Ruby and the SDK come from Debian's ``ruby``,
``ruby-aws-sdk-core`` and ``ruby-aws-sdk-s3`` (``scripts/install`` installs them). The bundle is
downloaded as the agent's DownloadBundle does it, with aws-sdk-s3 and ``:s3_endpoint_override:``
set to the server.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from opendeploy.api.commands.signing import SIGNER_CA_FILE
from opendeploy.testing.agents import register_instance
from opendeploy.testing.server import running_server
from tests.api._web_group import deploy_to_web_group

SCRIPT = Path(__file__).parent / "ruby" / "official_agent_wire.rb"
#: Set to 1 to skip these tests on a machine without Ruby (never on CI).
SKIP_ENV = "OPENDEPLOY_SKIP_RUBY"
#: (signing name, target prefix) of the two API variants the official agent speaks.
VARIANTS = {
    "ruby-1": ("codedeploy-commands", "CodeDeployCommandService_v20141006"),
    "ruby-2": ("codedeploy-commands-secure", "CodeDeployCommandService"),
}


def _need_ruby() -> str:
    ruby = shutil.which("ruby")
    problem = None
    if ruby is None:
        problem = "ruby is not installed: apt-get install -y ruby ruby-aws-sdk-core ruby-aws-sdk-s3"
    elif subprocess.run(
        [ruby, "-e", "require 'aws-sigv4'; require 'aws-sdk-s3'"], capture_output=True
    ).returncode:
        problem = "Ruby's AWS SDK is missing: apt-get install -y ruby-aws-sdk-core ruby-aws-sdk-s3"
    if problem is None:
        assert ruby is not None
        return ruby
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{problem} ({SKIP_ENV}=1)")
    pytest.fail(f"{problem}; or set {SKIP_ENV}=1 to skip the Ruby wire tests on this machine")


def _bundle() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("appspec.yml", "version: 0.0\nos: linux\n")
    return buffer.getvalue()


@pytest.mark.e2e
def test_the_official_agents_ruby_stack_can_drive_a_deployment(tmp_path: Path) -> None:
    ruby = _need_ruby()
    data = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'opendeploy.db'}"
    with running_server(data, database_url=url, extra_args=("--tls",)) as srv:
        hosts = {}
        for name in VARIANTS:
            register_instance(srv, name, tmp_path / name, tags={"role": "web"})
            hosts[name] = yaml.safe_load(
                (tmp_path / name / "codedeploy.onpremises.yml").read_text()
            )
        cd = srv.client()
        s3 = srv.client("s3")
        s3.create_bucket(Bucket="bundles")
        bundle = _bundle()
        s3.put_object(Bucket="bundles", Key="app.zip", Body=bundle)
        deployment_id = deploy_to_web_group(
            cd, "bundles", "app.zip", config="CodeDeployDefault.AllAtOnce"
        )
        for name, (signing_name, target_prefix) in VARIANTS.items():
            host = hosts[name]
            done = subprocess.run(
                [
                    ruby,
                    str(SCRIPT),
                    srv.endpoint,
                    str(srv.ca_bundle),
                    str(tmp_path / name / SIGNER_CA_FILE),  # as instance register wrote it
                    signing_name,
                    target_prefix,
                    host["aws_access_key_id"],
                    host["aws_secret_access_key"],
                    host["iam_user_arn"],
                    host["region"],
                    str(tmp_path / f"{name}.bundle"),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            seen: dict[str, Any] = json.loads(done.stdout)
            assert seen["tls_check"] == "passed", seen
            assert seen["command"] == "ApplicationStop"
            assert seen["deployment_system"] == "CodeDeploy"
            assert seen["spec_format"] == "PKCS7/JSON"
            assert seen["spec_verified"] is True and seen["spec_certificates"] == 1
            assert seen["spec_signer_pinned"] is True
            assert seen["spec_verified_by_stranger"] is False
            assert seen["spec"]["DeploymentId"] == deployment_id
            assert seen["spec"]["ApplicationName"] == "app"
            assert seen["bundle_etag_matches"] is True
            assert (tmp_path / f"{name}.bundle").read_bytes() == bundle
            assert seen["ack"] == [200, "InProgress"]
            assert seen["complete"] == 200
            assert seen["foreign_host"] == [400, "AccessDeniedException"]
            assert seen["wrong_secret"] == [400, "InvalidSignatureException"]
            target = cd.get_deployment_target(deploymentId=deployment_id, targetId=name)
            events = target["deploymentTarget"]["instanceTarget"]["lifecycleEvents"]
            assert events[0]["lifecycleEventName"] == "ApplicationStop"
            assert events[0]["status"] == "Succeeded"
