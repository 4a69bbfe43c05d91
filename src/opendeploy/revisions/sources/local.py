"""Bundles on the local disk: a path or ``file://`` URL, as ``codedeploy-local -l`` takes them.

Error messages are codedeploy-local's own (agent-behaviour §5), so scripts and users that know the
official tool see the same words.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from opendeploy.errors import BundleError
from opendeploy.revisions.archive import normalize_bundle_type

__all__ = ["LocalFileSource", "check_local_location", "resolve_local_location"]


def resolve_local_location(location: str) -> Path:
    """Turn a plain path or a ``file://`` URL into an absolute path that exists.

    ``file:///abs/path`` and ``file://localhost/abs/path`` are accepted (percent-escapes decoded);
    a relative plain path is taken from the current directory. ``http://`` gets the official
    "only encrypted (https)" error; other schemes (s3, https) are not local and are refused.
    """
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise BundleError(
            f"location {location} cannot be http, only encrypted (https) url endpoints supported"
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise BundleError(
                f"location {location} names the host {parts.netloc!r}; "
                "file:// locations must be on this host (file:///path)"
            )
        raw = unquote(parts.path)
    elif scheme:
        raise BundleError(
            f"location {location} is not a local file or directory (scheme {scheme}); "
            "expected a path or a file:// URL"
        )
    else:
        raw = location
    if not raw:
        raise BundleError(
            f"location {location} is specified as a file or directory which does not exist"
        )
    path = Path(os.path.abspath(raw))
    if not path.exists():
        raise BundleError(
            f"location {location} is specified as a file or directory which does not exist"
        )
    return path


def check_local_location(path: Path, bundle_type: str) -> None:
    """Check that ``path`` exists and suits ``bundle_type`` (a directory only for ``directory``)."""
    kind = normalize_bundle_type(bundle_type)
    if not path.exists():
        raise BundleError(
            f"location {path} is specified as a file or directory which does not exist"
        )
    if kind == "directory" and not path.is_dir():
        raise BundleError(f"location {path} is specified with type directory but it is a file")
    if kind != "directory" and path.is_dir():
        raise BundleError(
            f"location {path} is specified as a compressed local file but it is a directory"
        )


@dataclass(frozen=True)
class LocalFileSource:
    """A bundle already on this host: an archive file, or a directory (``bundle_type="directory"``).

    ``fetch`` makes ``dest_file`` a symbolic link to the bundle, as the official agent does for
    local files, so no copy of the bundle is ever made; it copies a file only where links fail.
    """

    path: Path
    bundle_type: str

    @classmethod
    def from_location(cls, location: str, bundle_type: str) -> LocalFileSource:
        """Resolve and check a user's location (path or ``file://`` URL) for ``bundle_type``."""
        path = resolve_local_location(location)
        check_local_location(path, bundle_type)
        return cls(path=path, bundle_type=normalize_bundle_type(bundle_type))

    def revision_env(self) -> dict[str, str | None]:
        """Local bundles set no ``BUNDLE_*`` variables (as the official agent)."""
        return {}

    def fetch(self, dest_file: Path) -> None:
        check_local_location(self.path, self.bundle_type)
        source = Path(os.path.abspath(self.path))
        if os.path.lexists(dest_file):
            if dest_file.is_dir() and not dest_file.is_symlink():
                raise BundleError(f"cannot fetch bundle to {dest_file}: it is a directory")
            dest_file.unlink()
        dest_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(source, dest_file)
        except OSError as exc:
            if source.is_dir():
                raise BundleError(f"cannot link {dest_file} to {source}: {exc}") from exc
            try:
                shutil.copyfile(source, dest_file)
            except OSError as copy_exc:
                raise BundleError(
                    f"cannot copy bundle {source} to {dest_file}: {copy_exc}"
                ) from copy_exc
