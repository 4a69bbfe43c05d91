"""``aws deploy push`` (unmodified aws-cli) and ``opendeploy push`` against the bundle store."""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opendeploy.api.s3.objects import multipart_etag
from opendeploy.cli.push import MULTIPART_SIZE, PushError, write_bundle
from tests.revisions.s3_front_server import FrontServer, front_server

AWS = Path(sys.executable).parent / "aws"
_HINT = re.compile(
    r"To deploy with this revision, run:\n"
    r"aws deploy create-deployment --application-name (?P<app>\S+) "
    r"--s3-location bucket=(?P<bucket>[^,]+),key=(?P<key>[^,]+),bundleType=zip,"
    r"eTag=(?P<etag>[^, ]+)(?:,version=(?P<version>\S+))? "
    r"--deployment-group-name <deployment-group-name> "
    r"--deployment-config-name <deployment-config-name> --description <description>\n$"
)


@pytest.fixture
def front(tmp_path: Path, database_url: str) -> Iterator[FrontServer]:
    with front_server(tmp_path / "data", database_url) as server:
        server.codedeploy().create_application(applicationName="web")
        yield server


def _source(root: Path, *, big: bool = False) -> Path:
    root.mkdir()
    (root / "appspec.yml").write_text("version: 0.0\nos: linux\n")
    scripts = root / "scripts"
    scripts.mkdir()
    (scripts / "start.sh").write_text("#!/bin/sh\necho started\n")
    (scripts / "start.sh").chmod(0o755)
    (root / ".env").write_text("hidden\n")
    if big:
        (root / "payload.bin").write_bytes(os.urandom(MULTIPART_SIZE + 1024 * 1024))
    return root


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False
    )


def _check_registered(front: FrontServer, output: str) -> tuple[dict[str, Any], bytes]:
    """The printed location is registered, and its object is the bytes that ETag names."""
    match = _HINT.match(output)
    assert match, output
    location = {
        "bucket": match["bucket"],
        "key": match["key"],
        "bundleType": "zip",
        "eTag": match["etag"],
    }
    if match["version"]:
        location["version"] = match["version"]
    revision = {"revisionType": "S3", "s3Location": location}
    got = front.codedeploy().get_application_revision(applicationName="web", revision=revision)
    assert got["revision"]["s3Location"]["eTag"] == match["etag"]
    obj = front.s3().get_object(
        Bucket=match["bucket"], Key=match["key"], VersionId=match["version"]
    )
    data = obj["Body"].read()
    assert obj["ETag"].strip('"') == match["etag"]
    return location, data


def test_unmodified_aws_deploy_push(front: FrontServer, tmp_path: Path) -> None:
    source = _source(tmp_path / "app")
    env = front.aws_env(tmp_path / "aws")
    result = _run(
        [
            str(AWS),
            "deploy",
            "push",
            "--application-name",
            "web",
            "--s3-location",
            "s3://bundles/web/r1.zip",
            "--source",
            str(source),
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    location, data = _check_registered(front, result.stdout)
    assert location["eTag"] == hashlib.md5(data).hexdigest()
    assert "version" in location
    assert "appspec.yml" in zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_opendeploy_push_multipart_to_the_default_location(
    front: FrontServer, tmp_path: Path
) -> None:
    source = _source(tmp_path / "app", big=True)
    env = front.aws_env(tmp_path / "aws")
    del env["AWS_ENDPOINT_URL"]  # --endpoint-url covers both the S3 and the CodeDeploy client
    result = _run(
        [
            sys.executable,
            "-m",
            "opendeploy",
            "push",
            "--application-name",
            "web",
            "--source",
            str(source),
            "--endpoint-url",
            front.endpoint,
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    location, data = _check_registered(front, result.stdout)
    assert location["bucket"] == "opendeploy-bundles"
    assert location["key"].startswith("web/") and location["key"].endswith(".zip")
    parts = [data[i : i + MULTIPART_SIZE] for i in range(0, len(data), MULTIPART_SIZE)]
    assert len(parts) == 2
    assert location["eTag"] == multipart_etag([hashlib.md5(p).hexdigest() for p in parts])
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert {".env", "appspec.yml", "payload.bin", "scripts/start.sh"} == set(archive.namelist())
    mode = archive.getinfo("scripts/start.sh").external_attr >> 16
    assert stat.S_IMODE(mode) == 0o755


def test_push_without_appspec_fails_like_aws_cli(front: FrontServer, tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.mkdir()
    (source / "index.html").write_text("hi")
    result = _run(
        [sys.executable, "-m", "opendeploy", "push", "--application-name", "web"]
        + ["--source", str(source)],
        front.aws_env(tmp_path / "aws"),
    )
    assert result.returncode == 255
    assert f"{source.resolve() / 'appspec.yml'} was not found" in result.stderr


def test_bundle_leaves_out_hidden_files_when_asked(tmp_path: Path) -> None:
    source = _source(tmp_path / "app")
    (source / ".git").mkdir()
    (source / ".git" / "HEAD").write_text("ref\n")
    out = io.BytesIO()
    write_bundle(source, out, ignore_hidden=True)
    assert zipfile.ZipFile(out).namelist() == ["appspec.yml", "scripts/start.sh"]
    with pytest.raises(PushError, match="not a directory"):
        write_bundle(tmp_path / "missing", io.BytesIO())
