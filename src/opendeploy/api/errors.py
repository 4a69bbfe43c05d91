"""Exceptions -> AWS errors: (HTTP status, ``__type`` code, message), once, at the API edge.

- ``ServiceError`` (and every class of ``service_errors``) carries its own ``code`` and ``status``.
- A ``ShapeViolation`` (request validation) becomes the most specific code the operation's model
  documents for the failing member (``<Member>RequiredException`` for a missing member,
  ``Invalid<Member>Exception`` otherwise, trying the member, then its enclosing members), else
  ``InvalidInputException`` when the operation lists it, else ``ValidationException``.
- Anything else is a fault: HTTP 500 ``InternalFailure`` with the request id, logged with its
  traceback by the caller. 5xx is kept for real faults because clients retry it.

Other exception families can be mapped by adding to ``ERROR_MAP``; the lookup walks the MRO.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from opendeploy import service_errors
from opendeploy.api.shapes import ShapeViolation
from opendeploy.errors import ServiceError


@dataclass(frozen=True)
class WireError:
    """What the protocol layer renders: status, ``__type`` and message."""

    status: int
    code: str
    message: str

    @property
    def is_fault(self) -> bool:
        return self.status >= 500


def _from_service_error(exc: BaseException) -> WireError:
    assert isinstance(exc, ServiceError)
    return WireError(exc.status, exc.code, exc.message)


#: Exception class -> renderer; ``to_wire_error`` uses the first class found in the MRO.
ERROR_MAP: dict[type[BaseException], Callable[[BaseException], WireError]] = {
    ServiceError: _from_service_error,
}


def to_wire_error(exc: BaseException, request_id: str) -> WireError:
    """Render ``exc``; unmapped exceptions become ``InternalFailure`` (500) naming the request."""
    for cls in type(exc).__mro__:
        render = ERROR_MAP.get(cls)
        if render is not None:
            return render(exc)
    return WireError(
        500,
        service_errors.InternalFailureError.code,
        f"We encountered an internal error. Please try again. (request id {request_id})",
    )


@cache
def service_error_classes() -> dict[str, type[ServiceError]]:
    """Every ``ServiceError`` class of ``service_errors``, by AWS code."""
    return {
        cls.code: cls
        for _, cls in inspect.getmembers(service_errors, inspect.isclass)
        if issubclass(cls, ServiceError) and cls is not ServiceError
    }


def error_for_code(code: str, message: str) -> ServiceError:
    """An instance of the class for ``code`` (a plain ``ServiceError`` with that code if none)."""
    cls = service_error_classes().get(code)
    if cls is None:
        error = ServiceError(message)
        error.code = code
        return error
    return cls(message)


def validation_error(violation: ShapeViolation, operation: Any) -> ServiceError:
    """The AWS error for a request that breaks its input shape, per the operation's error list.

    CodeDeploy documents specific codes (``ApplicationNameRequiredException``,
    ``InvalidDeploymentGroupNameException``…) and clients branch on them, so generic codes are
    only the fallback.
    """
    documented = {shape.name for shape in operation.error_shapes}
    code = _specific_code(violation, documented)
    if code is None:
        code = (
            "InvalidInputException"
            if "InvalidInputException" in documented
            else "ValidationException"
        )
    return error_for_code(code, violation.message)


def _stems(member: str | None, shape_name: str) -> list[str]:
    """Names a member goes by in error codes: ``instanceNames`` -> InstanceNames, InstanceName."""
    stems: list[str] = []
    for name in (member, shape_name):
        if not name:
            continue
        base = name[0].upper() + name[1:]
        stems.append(base)
        for suffix in ("List", "s"):
            if base.endswith(suffix) and len(base) > len(suffix):
                stems.append(base[: -len(suffix)])
    return list(dict.fromkeys(stems))


def _specific_code(violation: ShapeViolation, documented: set[str]) -> str | None:
    lowered = {code.lower(): code for code in documented}
    forms: tuple[str, ...] = ("{}RequiredException",) if violation.kind == "missing" else ()
    forms += ("Invalid{}Exception", "Invalid{}ValueException")
    # From the failing member outwards: a bad bundleType is an InvalidRevisionException when the
    # operation has no code of its own for the inner member.
    for depth, (member, shape_name) in enumerate(reversed(violation.chain)):
        stems = _stems(member, shape_name)
        templates = forms if depth == 0 else ("Invalid{}Exception", "Invalid{}ValueException")
        for template in templates:
            for stem in stems:
                exact = lowered.get(template.format(stem).lower())
                if exact:
                    return exact
        # "targetIds" -> DeploymentTargetIdRequiredException: a documented code that ends with
        # the member's own name, when nothing matched exactly.
        for template in templates:
            for stem in stems:
                suffix = template.format(stem).removeprefix("Invalid").lower()
                matches = sorted(c for low, c in lowered.items() if low.endswith(suffix))
                if (
                    len(stem) >= 4
                    and len(matches) == 1
                    and matches[0].startswith("Invalid") == template.startswith("Invalid")
                ):
                    return matches[0]
        # "tags" -> InvalidTagsToAddException: a documented code that starts with the name.
        for template in templates:
            for stem in stems:
                head = template.format(stem).lower().removesuffix("exception")
                starts = sorted(c for low, c in lowered.items() if low.startswith(head))
                if len(stem) >= 4 and len(starts) == 1:
                    return starts[0]
        # "TagKeys" -> TagRequiredException: the member's leading words, longest first.
        for template in templates:
            for stem in stems:
                words = re.findall(r"[A-Z0-9]+(?![a-z])|[A-Z][a-z0-9]*", stem)
                for cut in range(len(words) - 1, 0, -1):
                    shorter = lowered.get(template.format("".join(words[:cut])).lower())
                    if shorter:
                        return shorter
    return None
