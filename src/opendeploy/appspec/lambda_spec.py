"""The AppSpec of an AWS Lambda deployment: one function, its alias, two versions, two hooks.

::

    version: 0.0
    Resources:
      - myFunction:
          Type: AWS::Lambda::Function
          Properties: {Name: myFunction, Alias: live, CurrentVersion: "1", TargetVersion: "2"}
    Hooks:
      - BeforeAllowTraffic: CodeDeployHook_pre
      - AfterAllowTraffic: CodeDeployHook_post

YAML or JSON (the same tree). Keys are matched case-insensitively, as aws-cli does (AWS's own
reference page spells them in lower case, its examples in PascalCase). Versions are strings of
a positive integer (a YAML ``1`` is read as the integer and accepted as ``"1"``); ``$LATEST``
cannot be deployed from or to. Pure: text in, :class:`LambdaAppSpec` or
:class:`LambdaAppSpecError` out, whose message is the reason AWS appends to its
``INVALID_LAMBDA_CONFIGURATION`` error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from opendeploy.appspec.serverless import hook_functions, load_document
from opendeploy.errors import AppSpecError

__all__ = [
    "INVALID_LAMBDA_CONFIGURATION_MESSAGE",
    "LAMBDA_HOOKS",
    "LambdaAppSpec",
    "LambdaAppSpecError",
    "parse_lambda_appspec",
]

#: AWS's message for a Lambda AppSpec it cannot deploy (the reason follows it).
INVALID_LAMBDA_CONFIGURATION_MESSAGE: Final = (
    "The deployment failed because the AppSpec file that specifies the AWS Lambda deployment "
    "configuration is missing or has an invalid configuration."
)
#: The hooks a Lambda AppSpec may name, in the order they run.
LAMBDA_HOOKS: Final = ("BeforeAllowTraffic", "AfterAllowTraffic")
_FUNCTION_TYPE: Final = "aws::lambda::function"


class LambdaAppSpecError(AppSpecError):
    """A Lambda AppSpec that cannot be deployed; the message says why."""


@dataclass(frozen=True, slots=True)
class LambdaAppSpec:
    """What a Lambda deployment moves: ``alias`` of ``function_name`` from ``current_version``
    to ``target_version``, with the hook functions to run before and after (None: no hook)."""

    function_name: str
    alias: str
    current_version: str
    target_version: str
    before_allow_traffic: str | None = None
    after_allow_traffic: str | None = None

    def hook(self, event: str) -> str | None:
        """The function of the hook ``event`` (BeforeAllowTraffic/AfterAllowTraffic), if any."""
        if event == "BeforeAllowTraffic":
            return self.before_allow_traffic
        if event == "AfterAllowTraffic":
            return self.after_allow_traffic
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "functionName": self.function_name,
            "alias": self.alias,
            "currentVersion": self.current_version,
            "targetVersion": self.target_version,
            "beforeAllowTraffic": self.before_allow_traffic,
            "afterAllowTraffic": self.after_allow_traffic,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LambdaAppSpec:
        return cls(
            raw["functionName"],
            raw["alias"],
            raw["currentVersion"],
            raw["targetVersion"],
            raw.get("beforeAllowTraffic"),
            raw.get("afterAllowTraffic"),
        )


def _lower_keys(mapping: dict[Any, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in mapping.items()}


def _text(where: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise LambdaAppSpecError(f"{where} must be a string, not {value!r}.")
    text = str(value).strip()
    if not text:
        raise LambdaAppSpecError(f"{where} must not be empty.")
    return text


def _version(where: str, value: Any) -> str:
    text = _text(where, value)
    if not text.isdigit() or int(text) < 1:
        raise LambdaAppSpecError(
            f"{where} {text!r} is not a published version number (a positive integer; "
            "$LATEST cannot be used)."
        )
    return str(int(text))


def parse_lambda_appspec(text: str) -> LambdaAppSpec:
    """Parse a Lambda AppSpec; :class:`LambdaAppSpecError` names the field and the rule.

    >>> spec = parse_lambda_appspec('''
    ... version: 0.0
    ... resources:
    ...   - fn:
    ...       type: AWS::Lambda::Function
    ...       properties: {name: fn, alias: live, currentversion: 1, targetversion: 2}
    ... ''')
    >>> (spec.function_name, spec.alias, spec.current_version, spec.target_version)
    ('fn', 'live', '1', '2')
    """
    data = load_document(text, LambdaAppSpecError)
    if not isinstance(data, dict):
        raise LambdaAppSpecError("The AppSpec must be a mapping with 'version' and 'Resources'.")
    top = _lower_keys(data)
    resources = top.get("resources")
    if not isinstance(resources, list) or not resources:
        raise LambdaAppSpecError("The AppSpec names no resource: 'Resources' must list one.")
    if len(resources) != 1:
        raise LambdaAppSpecError(
            f"The AppSpec lists {len(resources)} resources; a Lambda deployment updates exactly "
            "one function."
        )
    entry = resources[0]
    if not isinstance(entry, dict) or len(entry) != 1:
        raise LambdaAppSpecError(
            "Each resource must be a mapping of one logical name to its Type and Properties."
        )
    ((logical, body),) = entry.items()
    if not isinstance(body, dict):
        raise LambdaAppSpecError(f"Resource {logical!r} must have Type and Properties.")
    body = _lower_keys(body)
    kind = body.get("type")
    if not isinstance(kind, str) or kind.lower() != _FUNCTION_TYPE:
        raise LambdaAppSpecError(
            f"Resource {logical!r} has Type {kind!r}; a Lambda deployment needs "
            "AWS::Lambda::Function."
        )
    props = body.get("properties")
    if not isinstance(props, dict):
        raise LambdaAppSpecError(f"Resource {logical!r} has no Properties.")
    props = _lower_keys(props)
    for key, name in (
        ("name", "Name"),
        ("alias", "Alias"),
        ("currentversion", "CurrentVersion"),
        ("targetversion", "TargetVersion"),
    ):
        if props.get(key) is None:
            raise LambdaAppSpecError(f"Resource {logical!r} is missing the property {name}.")
    current = _version("CurrentVersion", props["currentversion"])
    target = _version("TargetVersion", props["targetversion"])
    if current == target:
        raise LambdaAppSpecError(
            f"CurrentVersion and TargetVersion are both {current}: there is nothing to shift."
        )
    hooks = hook_functions(top.get("hooks"), LAMBDA_HOOKS, "a Lambda", LambdaAppSpecError)
    return LambdaAppSpec(
        function_name=_text("Name", props["name"]),
        alias=_text("Alias", props["alias"]),
        current_version=current,
        target_version=target,
        before_allow_traffic=hooks.get("BeforeAllowTraffic"),
        after_allow_traffic=hooks.get("AfterAllowTraffic"),
    )
