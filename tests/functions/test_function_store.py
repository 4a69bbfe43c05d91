"""Functions, versions and aliases in the store, through the service (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from opendeploy.functions.errors import (
    InvalidParameterValueError,
    PreconditionFailedError,
    ResourceConflictError,
    ResourceNotFoundError,
)
from opendeploy.functions.names import Arns
from opendeploy.functions.service import FunctionService
from opendeploy.revisions.blobstore import LocalBlobStore
from opendeploy.store.database import Store
from tests.conftest import scratch_postgres_database


def _zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", text)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def service(
    module_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FunctionService]:
    """One store per backend for the module (a scratch PostgreSQL database costs seconds); the
    tests use functions of their own names."""
    tmp = tmp_path_factory.mktemp("function-store")
    with contextlib.ExitStack() as stack:
        if module_backend == "sqlite":
            url = f"sqlite:///{tmp / 'opendeploy.db'}"
        else:
            url = stack.enter_context(scratch_postgres_database())
        store = Store.open(url)
        stack.callback(store.close)
        yield FunctionService(
            store.functions,
            LocalBlobStore(tmp / "blobs"),
            Arns("us-east-1", "000000000000"),
            clock=lambda: datetime.now(UTC),
        )


def _create(service: FunctionService, name: str = "fn") -> None:
    service.create_function(
        name,
        {
            "Runtime": "python3.11",
            "Handler": "app.handler",
            "Role": "arn:aws:iam::000000000000:role/r",
            "Code": {"ZipFile": _zip("x = 1")},
            "Environment": {"Variables": {"MODE": "test"}},
        },
    )


def test_versions_publish_only_changes_and_keep_their_code(service: FunctionService) -> None:
    _create(service)
    with pytest.raises(ResourceConflictError, match="Function already exist: fn"):
        _create(service)
    first = service.publish_version("fn", {})
    assert first["Version"] == "1" and first["Environment"] == {"Variables": {"MODE": "test"}}
    assert service.publish_version("fn", {})["Version"] == "1"
    service.update_code("fn", {"ZipFile": _zip("x = 2")})
    with pytest.raises(InvalidParameterValueError, match="is different from current CodeSHA256"):
        service.publish_version("fn", {"CodeSha256": first["CodeSha256"]})
    second = service.publish_version("fn", {"Description": "two"})
    assert second["Version"] == "2" and second["Description"] == "two"
    assert second["CodeSha256"] != first["CodeSha256"]
    one = service.get_configuration("fn", "1")
    assert one["CodeSha256"] == first["CodeSha256"]
    listed = service.list_versions("fn", {"MaxItems": 2})
    assert [v["Version"] for v in listed["Versions"]] == ["$LATEST", "1"]
    rest = service.list_versions("fn", {"Marker": listed["NextMarker"]})
    assert [v["Version"] for v in rest["Versions"]] == ["2"]


def test_aliases_route_and_guard_their_versions(service: FunctionService) -> None:
    _create(service, "al")
    service.publish_version("al", {})
    service.update_code("al", {"ZipFile": _zip("x = 2")})
    service.publish_version("al", {})
    alias = service.create_alias("al", {"Name": "live", "FunctionVersion": "1"})
    with pytest.raises(ResourceConflictError, match="Alias already exists: .*:function:al:live"):
        service.create_alias("al", {"Name": "live", "FunctionVersion": "2"})
    weighted = service.update_alias(
        "al", "live", {"RoutingConfig": {"AdditionalVersionWeights": {"2": 0.3}}}
    )
    assert weighted["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.3}}
    with pytest.raises(PreconditionFailedError):
        service.update_alias("al", "live", {"RevisionId": alias["RevisionId"]})
    with pytest.raises(InvalidParameterValueError, match="already included"):
        service.update_alias("al", "live", {"FunctionVersion": "2"})
    with pytest.raises(ResourceConflictError, match=r"aliases reference it: \[live\]"):
        service.delete_function("al", "2")
    record, found = service.resolve("al", "live")
    assert record.version == "1" and found is not None and found.routing == {"2": 0.3}
    done = service.update_alias("al", "live", {"FunctionVersion": "2", "RoutingConfig": {}})
    assert done["FunctionVersion"] == "2" and "RoutingConfig" not in done
    assert [a["Name"] for a in service.list_aliases("al", {})["Aliases"]] == ["live"]
    service.delete_alias("al", "live")
    with pytest.raises(ResourceNotFoundError, match="Alias not found: .*:function:al:live"):
        service.get_alias("al", "live")
    service.delete_function("al", None)
    with pytest.raises(ResourceNotFoundError, match="Function not found"):
        service.get_function("al", None)


def test_bad_code_and_runtimes_are_refused(service: FunctionService) -> None:
    base = {"Handler": "app.handler", "Role": "r", "Code": {"ZipFile": _zip("x")}}
    with pytest.raises(InvalidParameterValueError, match="not supported by this function host"):
        service.create_function("js", {**base, "Runtime": "nodejs20.x"})
    with pytest.raises(InvalidParameterValueError, match="Could not unzip"):
        service.create_function(
            "bad", {**base, "Runtime": "python3.11", "Code": {"ZipFile": b"not a zip"}}
        )
    with pytest.raises(InvalidParameterValueError, match="reserved keys"):
        service.create_function(
            "env",
            {**base, "Runtime": "python3.11", "Environment": {"Variables": {"AWS_REGION": "x"}}},
        )
