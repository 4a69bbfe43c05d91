"""Bundles from a git repository at one commit: GitHub, GitLab, Gitea, Bitbucket or any git server.

The official agent downloads ``https://api.github.com/repos/<owner>/<repo>/<tarball|zipball>/<commit>``
(agent-behaviour §1.6), which only GitHub serves. Here the ``git`` CLI does the work, so any server
that speaks git works: the commit is fetched (shallow when it is a full SHA) into a temporary bare
repository, checked to be the commit asked for, and written out with ``git archive``. The archive
holds the tree at the repository root, where GitHub's tarball has one ``<owner>-<repo>-<sha>/``
directory in front; ``unpack_bundle`` strips such a directory anyway, so both unpack the same.

A token is sent as an HTTP ``Authorization`` header that git reads from ``GIT_CONFIG_*``
environment variables, scoped to the repository URL: it never appears on a command line (where
``ps`` shows it) nor in an error message.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from opendeploy.errors import BundleError
from opendeploy.revisions.archive import normalize_bundle_type

__all__ = ["GitHubLocation", "GitSource", "parse_github_location"]

_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SHA_PREFIX = re.compile(r"[0-9a-f]{4,64}")
_SEGMENT = re.compile(r"[A-Za-z0-9_.~+-]+")
_ARCHIVE_FORMATS = {"tar": "tar", "tgz": "tar.gz", "zip": "zip"}
_STDERR_TAIL = 2000
_GITHUB_FORMAT = (
    "not in the expected format of 'https://github.com/<owner>/<repository_name>'"
    "(assumes HEAD commit) or "
    "'https://api.github.com/repos/<owner>/<repository_name>/tarball/<commit>' or "
    "'https://api.github.com/repos/<owner>/<repository_name>/zipball/<commit>'"
)
_GITHUB_WEB = re.compile(r"https://github\.com/([^/?#]+)/([^/?#]+)/?", re.IGNORECASE)
_GITHUB_API = re.compile(
    r"https://api\.github\.com/repos/([^/?#]+)/([^/?#]+)/(tarball|zipball)/([^/?#]+)/?",
    re.IGNORECASE,
)


@dataclass(frozen=True, kw_only=True)
class GitHubLocation:
    """A parsed codedeploy-local GitHub location: ``owner/name``, a commit, maybe a bundle type."""

    repository: str
    commit_id: str
    bundle_type: str | None = None


def parse_github_location(location: str) -> GitHubLocation:
    """Parse codedeploy-local's GitHub forms.

    ``https://github.com/<owner>/<repo>`` means the ``HEAD`` commit;
    ``https://api.github.com/repos/<owner>/<repo>/(tarball|zipball)/<commit>`` names the commit and
    the bundle type (``tar`` / ``zip``). Either is fetched with git from the configured base URL
    (GitHub's API tarballs are not used: they need GitHub itself and cannot be tested offline).
    """
    if m := _GITHUB_API.fullmatch(location):
        owner, repo, kind, commit = m.groups()
        return GitHubLocation(
            repository=f"{owner}/{repo}",
            commit_id=commit,
            bundle_type="tar" if kind.lower() == "tarball" else "zip",
        )
    if m := _GITHUB_WEB.fullmatch(location):
        owner, repo = m.groups()
        return GitHubLocation(repository=f"{owner}/{repo}", commit_id="HEAD")
    raise BundleError(f"github location {location} {_GITHUB_FORMAT}")


class GitSource:
    """A repository (``owner/name`` on GitHub; any path on other servers) at one commit.

    ``commit_id`` is a full SHA (fetched alone, depth 1), a unique SHA prefix of at least 4 hex
    digits (needs the branches and tags fetched to resolve it), or ``HEAD``. ``base_url`` is the
    server: ``https://github.com``, ``https://gitlab.example.com``, ``git://host:port``,
    ``file:///srv/git``, …; the repository URL is ``<base_url>/<repository>``. ``token`` is sent as
    HTTP basic auth with ``token_user`` (``x-access-token`` suits GitHub; GitLab and Gitea accept
    any user name with a token as the password). After :meth:`fetch`, ``resolved_commit`` is the
    full SHA that was archived.
    """

    def __init__(
        self,
        repository: str,
        commit_id: str,
        bundle_type: str = "tar",
        *,
        base_url: str = "https://github.com",
        token: str | None = None,
        token_user: str = "x-access-token",
        timeout: float = 600.0,
        git: str = "git",
    ) -> None:
        kind = normalize_bundle_type(bundle_type)
        if kind not in _ARCHIVE_FORMATS:
            raise BundleError(
                f"BundleType: {bundle_type} is not possible for a git revision; use tar, tgz or zip"
            )
        segments = repository.strip("/").split("/")
        if not repository.strip("/") or not all(
            _SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments
        ):
            raise BundleError(
                f"repository: {repository!r} is not a repository path such as 'owner/name' "
                "(letters, digits and _ . ~ + - between slashes)"
            )
        if commit_id != "HEAD" and not _SHA_PREFIX.fullmatch(commit_id.lower()):
            raise BundleError(
                f"commitId: {commit_id!r} is not a commit SHA (4 to 64 hex digits) or HEAD"
            )
        self.repository = repository.strip("/")
        self.commit_id = commit_id if commit_id == "HEAD" else commit_id.lower()
        self._bundle_type = kind
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._token_user = token_user
        self.timeout = timeout
        self.git = git
        self.resolved_commit: str | None = None

    @classmethod
    def from_location(
        cls, location: str, bundle_type: str | None = None, **options: object
    ) -> GitSource:
        """A GitSource for a codedeploy-local GitHub URL (see :func:`parse_github_location`)."""
        loc = parse_github_location(location)
        kind = bundle_type or loc.bundle_type or "tar"
        return cls(loc.repository, loc.commit_id, kind, **options)  # type: ignore[arg-type]

    @property
    def bundle_type(self) -> str:
        return self._bundle_type

    @property
    def url(self) -> str:
        """The repository URL git fetches from."""
        return f"{self.base_url}/{self.repository}"

    def __repr__(self) -> str:
        return (
            f"GitSource(repository={self.repository!r}, commit_id={self.commit_id!r}, "
            f"bundle_type={self.bundle_type!r}, base_url={self.base_url!r})"
        )

    def revision_env(self) -> dict[str, str | None]:
        """The hook variable of a GitHub revision, the commit as the spec gives it."""
        return {"BUNDLE_COMMIT": self.commit_id}

    def fetch(self, dest_file: Path) -> None:
        """Fetch the commit, check it is the one asked for, and ``git archive`` it to dest_file."""
        if dest_file.is_dir() and not dest_file.is_symlink():
            raise BundleError(f"cannot fetch bundle to {dest_file}: it is a directory")
        dest_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest_file.parent, prefix=".git-fetch-") as tmp:
            repo = Path(tmp) / "repo.git"
            self._git(["init", "--quiet", "--bare", str(repo)], cwd=Path(tmp), what="init")
            resolved = self._fetch_commit(repo)
            if self.commit_id != "HEAD" and not resolved.startswith(self.commit_id):
                raise BundleError(
                    f"commitId: {self.commit_id} resolved to {resolved} in {self.url}, "
                    "which is not that commit"
                )
            part = Path(tmp) / "bundle.part"
            self._git(
                ["archive", f"--format={_ARCHIVE_FORMATS[self.bundle_type]}", "-o", str(part)]
                + [resolved],
                cwd=repo,
                what=f"archive commit {resolved}",
            )
            os.replace(part, dest_file)
        self.resolved_commit = resolved

    def _fetch_commit(self, repo: Path) -> str:
        """Fetch what ``commit_id`` needs into ``repo`` and return the full SHA it names."""
        what = f"fetch commit {self.commit_id} from {self.url}"
        if self.commit_id == "HEAD" or _FULL_SHA.fullmatch(self.commit_id):
            # Servers speaking protocol v2 (git ≥ 2.18, GitHub, GitLab) serve any commit by SHA.
            self._git(
                ["fetch", "--quiet", "--no-tags", "--depth=1", self.url, self.commit_id],
                cwd=repo,
                what=what,
            )
            rev = "FETCH_HEAD"
        else:
            # A SHA prefix cannot be asked for: fetch branches and tags, then resolve it here.
            self._git(
                ["fetch", "--quiet", self.url, "+refs/heads/*:refs/heads/*"]
                + ["+refs/tags/*:refs/tags/*"],
                cwd=repo,
                what=what,
            )
            rev = self.commit_id
        out = self._git(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
            cwd=repo,
            what=what,
            missing=f"commitId: {self.commit_id} is not a commit (or not a unique prefix of one) "
            f"in {self.url}",
        )
        return out.strip()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Never wait for a password on a terminal nobody watches; stable English messages.
        env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "LANGUAGE": "C"})
        if self.token:
            basic = base64.b64encode(f"{self._token_user}:{self.token}".encode()).decode()
            count = env.get("GIT_CONFIG_COUNT", "")
            index = int(count) if count.isdigit() else 0
            env["GIT_CONFIG_COUNT"] = str(index + 1)
            # Scoped to the repository URL, so a redirect elsewhere does not carry the token.
            env[f"GIT_CONFIG_KEY_{index}"] = f"http.{self.url}.extraHeader"
            env[f"GIT_CONFIG_VALUE_{index}"] = f"Authorization: Basic {basic}"
        return env

    def _scrub(self, text: str) -> str:
        if self.token:
            basic = base64.b64encode(f"{self._token_user}:{self.token}".encode()).decode()
            text = text.replace(basic, "***").replace(self.token, "***")
        return text

    def _git(self, args: list[str], *, cwd: Path, what: str, missing: str | None = None) -> str:
        """Run git; on failure raise BundleError with the tail of its stderr."""
        try:
            proc = subprocess.Popen(
                [self.git, *args],
                cwd=cwd,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # so a timeout stops git's helpers too
            )
        except OSError as exc:
            raise BundleError(f"cannot run {self.git!r} to {what}: {exc}") from exc
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise BundleError(f"git could not {what} within {self.timeout:g} s") from exc
        if proc.returncode != 0:
            if missing is not None:
                raise BundleError(missing)
            tail = self._scrub(err.decode(errors="replace").strip())[-_STDERR_TAIL:]
            raise BundleError(f"git could not {what} (exit {proc.returncode}): {tail}")
        return out.decode(errors="replace")
