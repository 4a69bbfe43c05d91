"""``opendeploy push``: zip a directory, upload it to the bundle store, register the revision.

The same options, checks and output as ``aws deploy push`` (aws-cli v1
``customizations/codedeploy/push.py``, read for behaviour): the directory must hold
``appspec.yml`` at its root; hidden files are bundled unless ``--ignore-hidden-files``; the
revision is registered with ``bundleType=zip``, the ETag (quotes stripped) and the version id; and
the ``aws deploy create-deployment`` command that deploys it is printed. Differences:
``--s3-location`` is optional (default ``s3://opendeploy-bundles/<application>/<uuid>.zip``), the
S3 client goes to the same endpoint as the CodeDeploy client (``--endpoint-url`` covers both),
the zip is streamed to a temporary file (never held in memory), and bundles over 8 MiB go up in
8 MiB parts through boto3's transfer manager. The ETag the server reports is checked against the
one computed locally, so the registered revision names exactly the bytes that were zipped.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NoReturn

import click

DEFAULT_BUCKET = "opendeploy-bundles"
#: Bundles this large or larger are uploaded in parts of this size.
MULTIPART_SIZE = 8 * 1024 * 1024
EXIT_FAILURE = 255  # aws-cli's status for a failed command
_READ = 1024 * 1024


class PushError(click.ClickException):
    """A push that cannot go on; printed like aws-cli (message on stderr, status 255)."""

    exit_code = EXIT_FAILURE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"\n{self.message}", err=True)


def parse_s3_location(value: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key), with aws-cli's message when it is not that."""
    if not value.startswith("s3://") or "/" not in value[5:] or value.endswith("/"):
        raise PushError(
            "--s3-location must specify a bucket and a key in the form s3://<bucket>/<key>: "
            f"got {value!r}."
        )
    bucket, _, key = value[5:].partition("/")
    if not bucket or not key:
        raise PushError(
            "--s3-location must specify a bucket and a key in the form s3://<bucket>/<key>: "
            f"got {value!r}."
        )
    return bucket, key


def _bundle_files(source: Path, ignore_hidden: bool) -> Iterator[tuple[Path, str]]:
    """(file, name in the zip) for every file under ``source``, in a stable order."""
    for root, dirs, files in os.walk(source, topdown=True):
        dirs.sort()
        if ignore_hidden:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            files = [f for f in files if not f.startswith(".")]
        for name in sorted(files):
            path = Path(root) / name
            yield path, path.relative_to(source).as_posix()


def write_bundle(source: Path, out: IO[bytes], *, ignore_hidden: bool = False) -> int:
    """Zip ``source`` into ``out`` (deflated, unix modes kept); returns the number of files.

    Raises :class:`PushError` when ``appspec.yml`` is not at the root, as aws-cli does.
    """
    source = source.resolve()
    if not source.is_dir():
        raise PushError(f"--source {source} is not a directory.")
    count = 0
    has_appspec = False
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for path, arcname in _bundle_files(source, ignore_hidden):
            # ZipInfo.from_file records the file's mode in external_attr (create_system unix).
            zf.write(path, arcname)
            count += 1
            has_appspec = has_appspec or arcname == "appspec.yml"
    if not has_appspec:
        raise PushError(f"{source / 'appspec.yml'} was not found")
    return count


def expected_etag(bundle: IO[bytes], size: int, part_size: int = MULTIPART_SIZE) -> str:
    """The ETag S3 will report: the MD5, or for a multipart upload MD5-of-MD5s ``-<parts>``."""
    bundle.seek(0)
    if size < part_size:
        md5 = hashlib.md5(usedforsecurity=False)
        while chunk := bundle.read(_READ):
            md5.update(chunk)
        return md5.hexdigest()
    digests = []
    while True:
        part = hashlib.md5(usedforsecurity=False)
        remaining = part_size
        while remaining and (chunk := bundle.read(min(_READ, remaining))):
            part.update(chunk)
            remaining -= len(chunk)
        if remaining == part_size:
            break
        digests.append(part.digest())
    whole = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return f"{whole}-{len(digests)}"


def create_deployment_hint(
    application: str, bucket: str, key: str, etag: str, version: str | None
) -> str:
    """aws-cli's closing message, word for word."""
    version_part = f",version={version}" if version else ""
    return (
        "To deploy with this revision, run:\n"
        f"aws deploy create-deployment --application-name {application} "
        f"--s3-location bucket={bucket},key={key},bundleType=zip,eTag={etag}{version_part} "
        "--deployment-group-name <deployment-group-name> "
        "--deployment-config-name <deployment-config-name> "
        "--description <description>\n"
    )


def upload_bundle(s3: Any, path: Path, bucket: str, key: str) -> tuple[str, str | None]:
    """Upload the zip (multipart from 8 MiB on); returns (ETag unquoted, version id or None)."""
    from boto3.s3.transfer import S3Transfer, TransferConfig

    config = TransferConfig(multipart_threshold=MULTIPART_SIZE, multipart_chunksize=MULTIPART_SIZE)
    size = path.stat().st_size
    with path.open("rb") as f:
        etag = expected_etag(f, size)
    S3Transfer(client=s3, config=config).upload_file(str(path), bucket, key)
    # The transfer manager does not hand back the response; HEAD names the version just written,
    # and the ETag comparison proves it is this upload's bytes.
    head = s3.head_object(Bucket=bucket, Key=key)
    reported = str(head.get("ETag", "")).strip('"')
    if reported != etag:
        raise PushError(
            f"s3://{bucket}/{key}: the server reports ETag {reported!r} after the upload, "
            f"not {etag!r}; the object was replaced meanwhile or the upload was altered."
        )
    version = head.get("VersionId")
    return etag, str(version) if version else None


@click.command("push")
@click.option("--application-name", required=True, help="The application to register with.")
@click.option(
    "--s3-location",
    help=f"s3://<bucket>/<key> (default: s3://{DEFAULT_BUCKET}/<application>/<uuid>.zip).",
)
@click.option(
    "--ignore-hidden-files/--no-ignore-hidden-files",
    default=False,
    help="Leave out files and directories whose names start with '.' (default: bundle them).",
)
@click.option(
    "--source",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The directory with appspec.yml at its root and the content to deploy.",
)
@click.option("--description", help="Description of the revision (default: when uploaded).")
@click.option("--endpoint-url", help="The OpenDeploy server (default: found the AWS way).")
@click.option("--profile", help="AWS profile in the shared credentials/config files.")
@click.option("--region", help="Region to sign for (default: the profile's, or the server's).")
@click.option("--no-verify-ssl", is_flag=True, help="Do not verify the server's certificate.")
def push(
    application_name: str,
    s3_location: str | None,
    ignore_hidden_files: bool,
    source: Path,
    description: str | None,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
    no_verify_ssl: bool,
) -> None:
    """Bundle a directory as a zip, upload it, and register it as an application revision.

    Example: opendeploy push --application-name web --source ./build
    """
    if s3_location:
        bucket, key = parse_s3_location(s3_location)
    else:
        bucket, key = DEFAULT_BUCKET, f"{application_name}/{uuid.uuid4()}.zip"
        s3_location = f"s3://{bucket}/{key}"
    if not description:
        description = (
            f"Uploaded by opendeploy push {datetime.now(UTC).replace(tzinfo=None).isoformat()} UTC"
        )
    codedeploy, s3 = _clients(endpoint_url, profile, region, not no_verify_ssl)
    try:
        # A misspelt application fails here, before anything is uploaded.
        codedeploy.get_application(applicationName=application_name)
    except Exception as exc:
        _fail(str(exc))
    with tempfile.TemporaryDirectory(prefix="opendeploy-push-") as tmp:
        bundle = Path(tmp) / "bundle.zip"
        with bundle.open("wb") as out:
            write_bundle(source, out, ignore_hidden=ignore_hidden_files)
        try:
            etag, version = upload_bundle(s3, bundle, bucket, key)
        except PushError:
            raise
        except Exception as exc:
            _fail(f"Failed to upload '{source}' to '{s3_location}': {exc}")
    location: dict[str, str] = {"bucket": bucket, "key": key, "bundleType": "zip", "eTag": etag}
    if version:
        location["version"] = version
    try:
        codedeploy.register_application_revision(
            applicationName=application_name,
            revision={"revisionType": "S3", "s3Location": location},
            description=description,
        )
    except Exception as exc:
        _fail(str(exc))
    sys.stdout.write(create_deployment_hint(application_name, bucket, key, etag, version))


def _clients(
    endpoint_url: str | None, profile: str | None, region: str | None, verify_ssl: bool
) -> tuple[Any, Any]:
    """CodeDeploy and S3 clients for one connection (resolved like every opendeploy command)."""
    from opendeploy.cli.connection import (
        ConnectionOptions,
        CredentialsNotFoundError,
        resolve_connection,
    )

    options = ConnectionOptions(
        endpoint_url=endpoint_url, profile=profile, region=region, verify_ssl=verify_ssl
    )
    try:
        connection = resolve_connection(options)
    except CredentialsNotFoundError as exc:
        _fail(str(exc))
    # A custom endpoint makes botocore address buckets path-style (/<bucket>/<key>), which is
    # what the server's S3 front answers; no virtual-hosted DNS is needed.
    return connection.client("codedeploy"), connection.client("s3")


def _fail(message: str) -> NoReturn:
    raise PushError(message)
