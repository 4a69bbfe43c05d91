"""AppSpec files of EC2/on-premises deployments: find, parse and validate (pure, no I/O beyond
reading the one file).

``parse_appspec`` turns text into a frozen ``AppSpec``; every broken rule raises
``AppSpecError`` naming the field, the value and the rule, followed by the official agent's
wording where it has one.
"""

from __future__ import annotations

from opendeploy.appspec.model import (
    Ace,
    AppSpec,
    FileExistsBehavior,
    FileMapping,
    ObjectType,
    Permission,
    Script,
    SELinuxContext,
)
from opendeploy.appspec.parse import APPSPEC_NAMES, find_appspec, load_appspec, parse_appspec

__all__ = [
    "APPSPEC_NAMES",
    "Ace",
    "AppSpec",
    "FileExistsBehavior",
    "FileMapping",
    "ObjectType",
    "Permission",
    "SELinuxContext",
    "Script",
    "find_appspec",
    "load_appspec",
    "parse_appspec",
]
