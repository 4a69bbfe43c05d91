"""Function names, ARNs and qualifiers as the Lambda API takes them (pure).

A ``FunctionName`` may be a name (``my-function``), a name with a qualifier
(``my-function:live``), a partial ARN (``123456789012:function:my-function``) or a full ARN
(``arn:aws:lambda:us-east-1:123456789012:function:my-function[:qualifier]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opendeploy.functions.errors import InvalidParameterValueError, ValidationError

LATEST = "$LATEST"

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_QUALIFIER = re.compile(r"\$LATEST|[a-zA-Z0-9_-]{1,128}")
_ALIAS = re.compile(r"(?!^[0-9]+$)[a-zA-Z0-9_-]{1,128}")
_VERSION = re.compile(r"[0-9]{1,10}")
_ARN = re.compile(
    r"arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
    r"(?P<name>[^:]+)(?::(?P<qualifier>[^:]+))?"
)
_PARTIAL = re.compile(r"(?P<account>\d{12}):function:(?P<name>[^:]+)(?::(?P<qualifier>[^:]+))?")


@dataclass(frozen=True)
class Arns:
    """Formats ARNs for this server's region and account."""

    region: str
    account_id: str

    def function(self, name: str, qualifier: str | None = None) -> str:
        base = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return base if qualifier is None else f"{base}:{qualifier}"


def split_function_name(raw: str, qualifier: str | None = None) -> tuple[str, str | None]:
    """(name, qualifier) that ``raw`` and the ``Qualifier`` parameter name together.

    A qualifier in both that differs is refused, as Lambda refuses it."""
    found: str | None = None
    if (match := _ARN.fullmatch(raw)) or (match := _PARTIAL.fullmatch(raw)):
        name, found = match["name"], match["qualifier"]
    elif raw.count(":") == 1:
        name, found = raw.split(":")
    else:
        name = raw
    if not _NAME.fullmatch(name):
        raise ValidationError(
            f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?"
            r"(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
        )
    if found is not None and qualifier is not None and found != qualifier:
        raise InvalidParameterValueError(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    qualifier = qualifier if qualifier is not None else found
    if qualifier is not None and not _QUALIFIER.fullmatch(qualifier):
        raise ValidationError(
            f"1 validation error detected: Value '{qualifier}' at 'qualifier' failed to satisfy "
            r"constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)"
        )
    return name, qualifier


def is_version(qualifier: str) -> bool:
    """Whether a qualifier names a version (``$LATEST`` or a number), not an alias."""
    return qualifier == LATEST or bool(_VERSION.fullmatch(qualifier))


def check_alias_name(name: str) -> None:
    """An alias name: letters, digits, ``-`` and ``_``, not all digits (those are versions)."""
    if not _ALIAS.fullmatch(name):
        raise ValidationError(
            f"1 validation error detected: Value '{name}' at 'name' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            r"(?!^[0-9]+$)([a-zA-Z0-9-_]+)"
        )
