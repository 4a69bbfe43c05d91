"""``--bundle-store``: the data directory by default, or an S3 bucket checked at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendeploy.revisions.blobstore import LocalBlobStore
from opendeploy.revisions.bundle_store import (
    BundleStoreError,
    S3Location,
    open_bundle_store,
    parse_bundle_store,
)
from opendeploy.testing.server import free_port


def test_locations() -> None:
    assert parse_bundle_store("s3://bundles") == S3Location("bundles", "")
    assert parse_bundle_store("s3://bundles/od/prod") == S3Location("bundles", "od/prod/")
    assert str(parse_bundle_store("s3://b/p/")) == "s3://b/p/"
    for bad in ("bundles", "file:///tmp/x", "s3:///key", "s3://b/k?versionId=1"):
        with pytest.raises(BundleStoreError, match="expected s3://BUCKET"):
            parse_bundle_store(bad)


def test_the_data_directory_is_the_default(tmp_path: Path) -> None:
    store = open_bundle_store(None, tmp_path, "us-east-1")
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "bundles"


def test_an_unreachable_store_is_named_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nobody listens
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    with pytest.raises(BundleStoreError) as caught:
        open_bundle_store("s3://bundles/od", tmp_path, "us-east-1")
    message = str(caught.value)
    assert "s3://bundles/od/" in message and endpoint in message
    assert "AWS_ENDPOINT_URL_S3" in message
