"""Local bundle locations: paths and file:// URLs, with codedeploy-local's error wording."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

import opendeploy.revisions.sources as sources
from opendeploy.errors import BundleError
from opendeploy.revisions.archive import unpack_bundle
from opendeploy.revisions.sources import (
    LocalFileSource,
    RevisionSource,
    check_local_location,
    resolve_local_location,
)


def test_plain_absolute_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "b.zip"
    bundle.touch()
    assert resolve_local_location(str(bundle)) == bundle
    monkeypatch.chdir(tmp_path)
    assert resolve_local_location("b.zip") == bundle
    assert resolve_local_location("./sub/../b.zip") == bundle


def test_file_urls(tmp_path: Path) -> None:
    bundle = tmp_path / "my bundle.zip"
    bundle.touch()
    assert resolve_local_location(bundle.as_uri()) == bundle  # file:///…/my%20bundle.zip
    assert resolve_local_location(f"file://localhost{bundle}") == bundle


def test_file_url_on_another_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="names the host 'elsewhere'"):
        resolve_local_location(f"file://elsewhere{tmp_path}")


def test_http_gets_the_official_message() -> None:
    location = "http://example.com/b.zip"
    with pytest.raises(BundleError) as caught:
        resolve_local_location(location)
    assert str(caught.value) == (
        f"location {location} cannot be http, only encrypted (https) url endpoints supported"
    )


@pytest.mark.parametrize("location", ["s3://bucket/key.zip", "https://github.com/o/r"])
def test_remote_locations_are_not_local(location: str) -> None:
    with pytest.raises(BundleError, match=r"is not a local file or directory \(scheme"):
        resolve_local_location(location)


@pytest.mark.parametrize("as_url", [False, True])
def test_missing_location_gets_the_official_message(tmp_path: Path, as_url: bool) -> None:
    missing = tmp_path / "nope.zip"
    location = missing.as_uri() if as_url else str(missing)
    with pytest.raises(BundleError) as caught:
        resolve_local_location(location)
    assert str(caught.value) == (
        f"location {location} is specified as a file or directory which does not exist"
    )


def test_check_local_location_type_rules(tmp_path: Path) -> None:
    archive = tmp_path / "b.tgz"
    archive.touch()
    check_local_location(archive, "tgz")
    check_local_location(tmp_path, "directory")
    with pytest.raises(BundleError) as caught:
        check_local_location(archive, "directory")
    assert (
        str(caught.value) == f"location {archive} is specified with type directory but it is a file"
    )
    with pytest.raises(BundleError) as caught:
        check_local_location(tmp_path, "zip")
    assert str(caught.value) == (
        f"location {tmp_path} is specified as a compressed local file but it is a directory"
    )
    with pytest.raises(BundleError, match=r"^type rar is not a valid type\. Must be one of"):
        check_local_location(archive, "rar")
    with pytest.raises(BundleError, match="which does not exist"):
        check_local_location(tmp_path / "gone", "zip")


def test_fetch_links_the_file_without_copying(tmp_path: Path) -> None:
    bundle = tmp_path / "b.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("appspec.yml", b"version: 0.0\n")
    source: RevisionSource = LocalFileSource.from_location(bundle.as_uri(), "ZIP")
    assert source.bundle_type == "zip"
    dest_file = tmp_path / "dg" / "d-1" / "bundle.tar"
    source.fetch(dest_file)
    assert os.readlink(dest_file) == str(bundle)
    source.fetch(dest_file)  # again: replaces the old link
    unpack_bundle(dest_file, source.bundle_type, tmp_path / "dg" / "d-1" / "deployment-archive")
    assert (tmp_path / "dg/d-1/deployment-archive/appspec.yml").read_bytes() == b"version: 0.0\n"


def test_fetch_of_a_directory_then_unpack_copies_the_tree(tmp_path: Path) -> None:
    src = tmp_path / "app"
    src.mkdir()
    (src / "appspec.yml").write_text("version: 0.0\n")
    source = LocalFileSource.from_location(str(src), "directory")
    dest_file = tmp_path / "d-1" / "bundle.tar"
    source.fetch(dest_file)
    unpack_bundle(dest_file, source.bundle_type, tmp_path / "d-1" / "deployment-archive")
    assert (tmp_path / "d-1/deployment-archive/appspec.yml").exists()


def test_fetch_checks_the_location_again(tmp_path: Path) -> None:
    bundle = tmp_path / "b.zip"
    bundle.touch()
    source = LocalFileSource.from_location(str(bundle), "zip")
    bundle.unlink()
    with pytest.raises(BundleError, match="which does not exist"):
        source.fetch(tmp_path / "bundle.tar")


def test_from_location_checks_the_type(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="compressed local file but it is a directory"):
        LocalFileSource.from_location(str(tmp_path), "tar")


def test_public_names_are_exact() -> None:
    exported = {n for n in vars(sources) if not n.startswith("_")}
    exported -= {"annotations", "base", "local", "s3", "git"}
    assert sorted(sources.__all__) == sorted(exported)
