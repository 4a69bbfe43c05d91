"""Git bundles: a real repository served by ``git daemon`` (and file://) on loopback."""

from __future__ import annotations

import base64
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opendeploy.errors import BundleError
from opendeploy.revisions.archive import unpack_bundle
from opendeploy.revisions.sources import (
    GitSource,
    RevisionSource,
    SourceSettings,
    parse_github_location,
    source_for_revision,
)
from tests.revisions.servers import git_daemon

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **_GIT_ENV}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass(frozen=True)
class Repo:
    base: Path  # the directory served: repositories are <base>/<owner>/<name>
    first: str  # commit 1: appspec.yml + v1 of app.txt
    second: str  # commit 2 (HEAD of main): app.txt v2, scripts/start.sh


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    base = tmp_path_factory.mktemp("git")
    work = base / "acme" / "web"
    work.mkdir(parents=True)
    _git(work, "init", "-q", "-b", "main")
    (work / "appspec.yml").write_text("version: 0.0\nos: linux\n")
    (work / "app.txt").write_text("v1\n")
    _git(work, "add", ".")
    _git(work, "commit", "-qm", "first")
    first = _git(work, "rev-parse", "HEAD")
    (work / "app.txt").write_text("v2\n")
    (work / "scripts").mkdir()
    (work / "scripts" / "start.sh").write_text("#!/bin/sh\necho start\n")
    (work / "scripts" / "start.sh").chmod(0o755)
    _git(work, "add", ".")
    _git(work, "commit", "-qm", "second")
    second = _git(work, "rev-parse", "HEAD")
    return Repo(base=base, first=first, second=second)


@pytest.fixture(scope="module")
def daemon(repo: Repo) -> Iterator[str]:
    with git_daemon(repo.base) as url:
        yield url


@pytest.mark.parametrize("bundle_type", ["tar", "zip", "tgz"])
def test_fetch_a_full_sha_over_git_daemon_and_unpack(
    repo: Repo, daemon: str, tmp_path: Path, bundle_type: str
) -> None:
    source: RevisionSource = GitSource("acme/web", repo.first, bundle_type, base_url=daemon)
    dest = tmp_path / "bundle.tar"

    source.fetch(dest)

    unpack_bundle(dest, bundle_type, tmp_path / "archive")
    archive = tmp_path / "archive"
    assert sorted(p.name for p in archive.iterdir()) == ["app.txt", "appspec.yml"]
    assert (archive / "app.txt").read_text() == "v1\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # temp repo gone
    assert isinstance(source, GitSource) and source.resolved_commit == repo.first


def test_newer_commit_keeps_executable_bits(repo: Repo, daemon: str, tmp_path: Path) -> None:
    GitSource("acme/web", repo.second, base_url=daemon).fetch(tmp_path / "bundle.tar")
    unpack_bundle(tmp_path / "bundle.tar", "tar", tmp_path / "archive")
    assert (tmp_path / "archive" / "app.txt").read_text() == "v2\n"
    assert os.access(tmp_path / "archive" / "scripts" / "start.sh", os.X_OK)


def test_file_base_url(repo: Repo, tmp_path: Path) -> None:
    source = GitSource("acme/web", repo.second, "zip", base_url=repo.base.as_uri())
    source.fetch(tmp_path / "bundle.tar")
    unpack_bundle(tmp_path / "bundle.tar", "zip", tmp_path / "archive")
    assert (tmp_path / "archive" / "app.txt").read_text() == "v2\n"


def test_short_sha_resolves_to_the_full_commit(repo: Repo, daemon: str, tmp_path: Path) -> None:
    source = GitSource("acme/web", repo.first[:8].upper(), base_url=daemon)
    source.fetch(tmp_path / "bundle.tar")
    assert source.resolved_commit == repo.first
    unpack_bundle(tmp_path / "bundle.tar", "tar", tmp_path / "archive")
    assert (tmp_path / "archive" / "app.txt").read_text() == "v1\n"


def test_head(repo: Repo, daemon: str, tmp_path: Path) -> None:
    source = GitSource("acme/web", "HEAD", base_url=daemon)
    source.fetch(tmp_path / "bundle.tar")
    assert source.resolved_commit == repo.second
    assert source.revision_env() == {"BUNDLE_COMMIT": "HEAD"}


def test_unknown_commit_fails_with_git_s_reason(daemon: str, tmp_path: Path) -> None:
    missing = "1" * 40
    with pytest.raises(BundleError) as info:
        GitSource("acme/web", missing, base_url=daemon).fetch(tmp_path / "bundle.tar")
    message = str(info.value)
    assert message.startswith(f"git could not fetch commit {missing} from {daemon}/acme/web")
    assert "not our ref" in message
    assert list(tmp_path.iterdir()) == []


def test_unknown_short_sha_is_a_clear_error(daemon: str, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="commitId: abcdef12 is not a commit"):
        GitSource("acme/web", "abcdef12", base_url=daemon).fetch(tmp_path / "bundle.tar")


def test_unknown_repository(daemon: str, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"git could not fetch .* \(exit 128\)"):
        GitSource("acme/nope", "HEAD", base_url=daemon).fetch(tmp_path / "bundle.tar")


@pytest.mark.parametrize(
    ("repository", "commit", "match"),
    [
        ("../etc", "HEAD", "repository: '../etc' is not a repository path"),
        ("acme/web name", "HEAD", "is not a repository path"),
        ("", "HEAD", "is not a repository path"),
        ("acme/web", "main", "commitId: 'main' is not a commit SHA"),
        ("acme/web", "--upload-pack=x", "is not a commit SHA"),
    ],
)
def test_bad_repository_or_commit(repository: str, commit: str, match: str) -> None:
    with pytest.raises(BundleError, match=match):
        GitSource(repository, commit)


def test_directory_bundle_type_is_refused() -> None:
    with pytest.raises(BundleError, match="BundleType: directory is not possible"):
        GitSource("a/b", "HEAD", "directory")


class _RecordingGitHttp(http.server.BaseHTTPRequestHandler):
    """A git smart-HTTP server that only records the Authorization header, then refuses."""

    seen: list[str | None] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_token_goes_in_a_header_never_on_the_command_line_or_in_errors(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingGitHttp)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    token = "ghp_s3cr3tt0k3n"
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        source = GitSource("acme/web", "HEAD", base_url=base, token=token)
        with pytest.raises(BundleError) as info:
            source.fetch(tmp_path / "bundle.tar")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert token not in str(info.value)
    assert token not in repr(source)
    expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert expected in _RecordingGitHttp.seen


@pytest.mark.parametrize(
    ("location", "repository", "commit", "bundle_type"),
    [
        ("https://github.com/acme/web", "acme/web", "HEAD", None),
        ("https://github.com/acme/web/", "acme/web", "HEAD", None),
        ("https://api.github.com/repos/acme/web/tarball/abc123", "acme/web", "abc123", "tar"),
        ("https://api.github.com/repos/acme/web/zipball/abc123", "acme/web", "abc123", "zip"),
    ],
)
def test_parse_github_location(
    location: str, repository: str, commit: str, bundle_type: str | None
) -> None:
    loc = parse_github_location(location)
    assert (loc.repository, loc.commit_id, loc.bundle_type) == (repository, commit, bundle_type)


@pytest.mark.parametrize(
    "location",
    [
        "https://github.com/acme",
        "https://github.com/acme/web/tree/main",
        "https://api.github.com/repos/acme/web/tarball",
        "http://github.com/acme/web",
    ],
)
def test_bad_github_locations_get_the_official_message(location: str) -> None:
    with pytest.raises(BundleError) as info:
        parse_github_location(location)
    assert str(info.value) == (
        f"github location {location} not in the expected format of "
        "'https://github.com/<owner>/<repository_name>'(assumes HEAD commit) or "
        "'https://api.github.com/repos/<owner>/<repository_name>/tarball/<commit>' or "
        "'https://api.github.com/repos/<owner>/<repository_name>/zipball/<commit>'"
    )


def test_api_url_maps_onto_the_configured_git_server(
    repo: Repo, daemon: str, tmp_path: Path
) -> None:
    location = f"https://api.github.com/repos/acme/web/zipball/{repo.first}"
    source = GitSource.from_location(location, base_url=daemon)
    assert source.bundle_type == "zip"
    source.fetch(tmp_path / "bundle.tar")
    unpack_bundle(tmp_path / "bundle.tar", "zip", tmp_path / "archive")
    assert (tmp_path / "archive" / "app.txt").read_text() == "v1\n"


def test_github_revision_through_the_factory(repo: Repo, daemon: str, tmp_path: Path) -> None:
    revision = {
        "RevisionType": "GitHub",
        "GitHubRevision": {"Account": "acme", "Repository": "web", "CommitId": repo.second},
    }
    source = source_for_revision(revision, settings=SourceSettings(git_base_url=daemon))
    assert isinstance(source, GitSource)
    assert (source.url, source.bundle_type) == (f"{daemon}/acme/web", "tar")
    source.fetch(tmp_path / "bundle.tar")
    unpack_bundle(tmp_path / "bundle.tar", "tar", tmp_path / "archive")
    assert (tmp_path / "archive" / "app.txt").read_text() == "v2\n"
