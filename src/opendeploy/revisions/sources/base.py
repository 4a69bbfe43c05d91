"""The seam every revision source (local file, S3, git, the built-in store) implements."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

__all__ = ["RevisionSource"]


class RevisionSource(Protocol):
    """Where a revision's bundle comes from, and how to put it at ``dest_file``.

    ``fetch`` leaves the bundle (or, for a ``directory`` bundle, a link to it) at ``dest_file``,
    the official agent's ``<deployment-root>/<group>/<deployment>/bundle.tar``; the caller then
    unpacks it with :func:`opendeploy.revisions.archive.unpack_bundle` using ``bundle_type``
    (one of ``archive.BUNDLE_TYPES``) and deletes ``dest_file``.
    """

    @property
    def bundle_type(self) -> str:
        """The declared bundle type: ``tar``, ``tgz``, ``zip`` or ``directory``."""
        ...

    def fetch(self, dest_file: Path) -> None:
        """Put the bundle at ``dest_file``, replacing whatever is there; raise BundleError."""
        ...

    def revision_env(self) -> dict[str, str | None]:
        """The ``BUNDLE_*`` variables hooks see for this source (``None``: unset)."""
        ...
