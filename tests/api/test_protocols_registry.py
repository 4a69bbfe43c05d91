"""The operation table: handler modules merge into one registry that matches the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendeploy.api.handlers import DuplicateHandlerError, load_handlers
from opendeploy.api.model import codedeploy_service


def test_the_registry_answers_exactly_the_operations_of_the_model() -> None:
    handlers = load_handlers()
    operations = codedeploy_service().operation_names
    unknown = set(handlers) - operations
    assert not unknown, f"handlers for operations the model does not have: {sorted(unknown)}"
    missing = operations - set(handlers)
    assert not missing, f"operations of the model without a handler: {sorted(missing)}"
    assert all(callable(handler) for handler in handlers.values())


def test_two_modules_claiming_one_operation_fail_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "dup_handlers_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("alpha", "beta"):
        (package / f"{name}.py").write_text(
            "HANDLERS = {'GetApplication': lambda ctx, params: {}}\n"
        )
    (package / "_private.py").write_text("raise RuntimeError('private modules are not loaded')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DuplicateHandlerError, match="GetApplication.*alpha.*beta"):
        load_handlers("dup_handlers_pkg")
