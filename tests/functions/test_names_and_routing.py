"""Function names, ARNs, qualifiers and alias routing (pure)."""

from __future__ import annotations

import random

import pytest

from opendeploy.functions.client import SelfEndpoint, self_client_factory, self_client_options
from opendeploy.functions.errors import InvalidParameterValueError, ValidationError
from opendeploy.functions.names import Arns, check_alias_name, is_version, split_function_name
from opendeploy.functions.routing import SpreadDraws, pick_version

ARN = "arn:aws:lambda:us-east-1:123456789012:function:shop"


@pytest.mark.parametrize(
    ("raw", "qualifier", "expected"),
    [
        ("shop", None, ("shop", None)),
        ("shop:live", None, ("shop", "live")),
        ("shop", "7", ("shop", "7")),
        (ARN, None, ("shop", None)),
        (ARN + ":$LATEST", None, ("shop", "$LATEST")),
        (ARN + ":live", "live", ("shop", "live")),
        ("123456789012:function:shop:3", None, ("shop", "3")),
    ],
)
def test_function_names_in_every_form(
    raw: str, qualifier: str | None, expected: tuple[str, str | None]
) -> None:
    assert split_function_name(raw, qualifier) == expected


def test_a_qualifier_given_twice_must_agree() -> None:
    with pytest.raises(InvalidParameterValueError, match="does not match the specified"):
        split_function_name("shop:live", "1")


@pytest.mark.parametrize("raw", ["", "bad name", "a" * 65, "x:y:z:w"])
def test_bad_function_names_are_refused(raw: str) -> None:
    with pytest.raises(ValidationError):
        split_function_name(raw)


def test_versions_and_aliases_are_told_apart() -> None:
    assert is_version("$LATEST") and is_version("12")
    assert not is_version("live") and not is_version("v2")
    check_alias_name("live-2")
    with pytest.raises(ValidationError):
        check_alias_name("12")


def test_arns() -> None:
    arns = Arns("eu-west-1", "123456789012")
    assert arns.function("f") == "arn:aws:lambda:eu-west-1:123456789012:function:f"
    assert arns.function("f", "live").endswith(":function:f:live")


def test_pick_version_splits_by_the_weight() -> None:
    assert pick_version("1", {}, 0.0) == "1"
    assert pick_version("1", {"2": 0.1}, 0.0999) == "2"
    assert pick_version("1", {"2": 0.1}, 0.1) == "1"
    assert pick_version("1", {"2": 1.0}, 0.999) == "2"
    draws = random.Random(7)
    share = sum(pick_version("1", {"2": 0.25}, draws.random()) == "2" for _ in range(10_000))
    assert 2300 < share < 2700


def test_spread_draws_keep_every_window_on_the_weight() -> None:
    draws = SpreadDraws(start=random.Random(3).random())
    picks = [pick_version("1", {"2": 0.1}, draws()) for _ in range(5000)]
    for start in range(0, 5000, 250):  # any window, not only the whole run
        window = picks[start : start + 1000]
        assert abs(window.count("2") - len(window) * 0.1) <= 2
    assert all(0.0 <= d < 1.0 for d in (draws() for _ in range(100)))


def test_the_servers_lambda_client_points_at_itself_unless_told_otherwise() -> None:
    target = SelfEndpoint("http://127.0.0.1:8443", "us-east-1", "AKIA1", "secret")
    options = self_client_options(target, environ={})
    assert options == {
        "endpoint_url": "http://127.0.0.1:8443",
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIA1",
        "aws_secret_access_key": "secret",
    }
    assert self_client_options(target, environ={"AWS_ENDPOINT_URL_LAMBDA": "http://x"}) is None
    assert self_client_options(None, environ={}) is None

    factory = self_client_factory(target, environ={})
    assert factory is not None and factory() is factory()
    assert factory().meta.endpoint_url == "http://127.0.0.1:8443"
    assert self_client_factory(target, environ={"AWS_ENDPOINT_URL_LAMBDA": "http://x"}) is None
