"""The agent package's public surface is exactly its ``__all__`` (style convention 5)."""

from __future__ import annotations

import types

import opendeploy.agent as agent


def test_all_lists_every_public_name_once_sorted() -> None:
    public = {
        name
        for name, value in vars(agent).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert sorted(agent.__all__) == agent.__all__
    assert set(agent.__all__) == public
