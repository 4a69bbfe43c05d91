"""Revision bundles: where they come from (``sources``) and how they are unpacked (``archive``)."""

from __future__ import annotations

from opendeploy.revisions.archive import (
    BUNDLE_TYPES,
    ExtractLimits,
    normalize_bundle_type,
    sha256_file,
    unpack_bundle,
)

__all__ = ["BUNDLE_TYPES", "ExtractLimits", "normalize_bundle_type", "sha256_file", "unpack_bundle"]
