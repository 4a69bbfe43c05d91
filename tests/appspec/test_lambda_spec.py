"""The Lambda AppSpec: YAML and JSON, keys in any case, and each way it can be wrong."""

from __future__ import annotations

import json

import pytest

from opendeploy.appspec.lambda_spec import LambdaAppSpec, LambdaAppSpecError, parse_lambda_appspec

PASCAL = """\
version: 0.0
Resources:
  - myLambdaFunction:
      Type: AWS::Lambda::Function
      Properties:
        Name: "myLambdaFunction"
        Alias: "live"
        CurrentVersion: "1"
        TargetVersion: "2"
Hooks:
  - BeforeAllowTraffic: "CodeDeployHook_pre"
  - AfterAllowTraffic: "CodeDeployHook_post"
"""
EXPECTED = LambdaAppSpec(
    "myLambdaFunction", "live", "1", "2", "CodeDeployHook_pre", "CodeDeployHook_post"
)


def test_aws_example_in_yaml_json_and_lower_case() -> None:
    assert parse_lambda_appspec(PASCAL) == EXPECTED
    lower = {
        "version": 0.0,
        "resources": [
            {
                "myLambdaFunction": {
                    "type": "AWS::Lambda::Function",
                    "properties": {
                        "name": "myLambdaFunction",
                        "alias": "live",
                        "currentversion": 1,  # a number is read as the version it spells
                        "targetversion": "2",
                    },
                }
            }
        ],
        "hooks": [
            {"beforeallowtraffic": "CodeDeployHook_pre"},
            {"AfterAllowTraffic": "CodeDeployHook_post"},
        ],
    }
    assert parse_lambda_appspec(json.dumps(lower)) == EXPECTED
    assert LambdaAppSpec.from_json(EXPECTED.as_json()) == EXPECTED
    no_hooks = parse_lambda_appspec(PASCAL.split("Hooks:")[0])
    assert no_hooks.before_allow_traffic is None and no_hooks.hook("AfterAllowTraffic") is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[1, 2", "neither valid YAML nor JSON"),
        ("just text", "must be a mapping"),
        ("version: 0.0\nResources: []\n", "names no resource"),
        (PASCAL.replace('        Alias: "live"\n', ""), "missing the property Alias"),
        (PASCAL.replace('TargetVersion: "2"', 'TargetVersion: "1"'), "nothing to shift"),
        (PASCAL.replace('CurrentVersion: "1"', "CurrentVersion: $LATEST"), "$LATEST"),
        (PASCAL.replace('TargetVersion: "2"', "TargetVersion: 0"), "positive integer"),
        (PASCAL.replace("AWS::Lambda::Function", "AWS::ECS::Service"), "AWS::Lambda::Function"),
        (PASCAL.replace("BeforeAllowTraffic", "BeforeInstall"), "not a Lambda lifecycle event"),
        (PASCAL.replace("AfterAllowTraffic", "BeforeAllowTraffic"), "more than once"),
        (PASCAL.replace('"CodeDeployHook_post"', "''"), "must not be empty"),
        (PASCAL.replace("Resources:\n", "Resources:\n  - other: {}\n"), "exactly one function"),
    ],
)
def test_what_cannot_be_deployed_is_named(text: str, words: str) -> None:
    with pytest.raises(LambdaAppSpecError) as exc:
        parse_lambda_appspec(text)
    assert words in str(exc.value)
