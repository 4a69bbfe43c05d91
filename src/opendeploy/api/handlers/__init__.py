"""The operation table: every module here exposes ``HANDLERS: dict[str, Handler]``.

``load_handlers()`` imports each module of this package and merges their tables; two modules
claiming one operation is a programming error caught at start-up, not at request time.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping

from opendeploy.api.context import Handler
from opendeploy.errors import OpenDeployError

__all__ = ["DuplicateHandlerError", "load_handlers"]


class DuplicateHandlerError(OpenDeployError, RuntimeError):
    """Two handler modules register the same operation."""


def load_handlers(package: str = __name__) -> dict[str, Handler]:
    """Import every module of ``package`` and merge their ``HANDLERS`` (operation -> function)."""
    root = importlib.import_module(package)
    merged: dict[str, Handler] = {}
    owners: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module_name = f"{package}.{info.name}"
        module = importlib.import_module(module_name)
        table: Mapping[str, Handler] | None = getattr(module, "HANDLERS", None)
        if table is None:
            continue
        for operation, handler in table.items():
            if operation in merged:
                raise DuplicateHandlerError(
                    f"operation {operation!r} has handlers in both {owners[operation]} and "
                    f"{module_name}; each operation belongs to exactly one module"
                )
            merged[operation] = handler
            owners[operation] = module_name
    return merged
