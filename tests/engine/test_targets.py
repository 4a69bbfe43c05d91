from __future__ import annotations

import pytest

from opendeploy.engine.targets import TagFilter, TagFilterType, matches_tag_set, select_targets

FLEET = [
    ("web-1", {"Name": "web", "Env": "prod"}),
    ("web-2", {"Name": "web", "Env": "staging"}),
    ("db-1", {"Name": "db", "Env": "prod"}),
    ("bare", {}),
]


def f(kind: str, key: str = "", value: str = "") -> TagFilter:
    return TagFilter(TagFilterType(kind), key, value)


def test_key_and_value_matches_exact_pair() -> None:
    assert select_targets(FLEET, filters=[f("KEY_AND_VALUE", "Name", "web")]) == ["web-1", "web-2"]


def test_key_only_matches_any_value() -> None:
    assert select_targets(FLEET, filters=[f("KEY_ONLY", "Env")]) == ["db-1", "web-1", "web-2"]


def test_value_only_matches_under_any_key() -> None:
    assert select_targets(FLEET, filters=[f("VALUE_ONLY", value="prod")]) == ["db-1", "web-1"]


def test_filter_list_is_or() -> None:
    filters = [f("KEY_AND_VALUE", "Name", "db"), f("KEY_AND_VALUE", "Env", "staging")]
    assert select_targets(FLEET, filters=filters) == ["db-1", "web-2"]


def test_tag_set_is_and_across_groups_or_within() -> None:
    tag_set = [
        [f("KEY_AND_VALUE", "Name", "web"), f("KEY_AND_VALUE", "Name", "db")],
        [f("KEY_AND_VALUE", "Env", "prod")],
    ]
    assert select_targets(FLEET, tag_set=tag_set) == ["db-1", "web-1"]


def test_empty_selection_matches_nothing() -> None:
    assert select_targets(FLEET) == []
    assert not matches_tag_set({"a": "b"}, [[]])


def test_from_wire_defaults_and_rejects_bad_type() -> None:
    assert TagFilter.from_wire({"Key": "k", "Value": "v"}).type is TagFilterType.KEY_AND_VALUE
    with pytest.raises(ValueError, match="Type: 'BOTH'"):
        TagFilter.from_wire({"Key": "k", "Type": "BOTH"})
