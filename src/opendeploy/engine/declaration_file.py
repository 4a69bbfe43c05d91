"""A server's declaration files (load balancers, alarms): YAML read with a clear error, and
read again only when the file changes, so the engine may ask for them on every pass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml

T = TypeVar("T")


def read_yaml(path: Path, error: type[Exception]) -> Any:
    """The YAML (or JSON) document at ``path``; ``error`` names the file and why it cannot."""
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise error(f"{path}: cannot read it: {e}") from None


class ReadWhenChanged(Generic[T]):
    """``load(path)``, kept per path until the file's modification time changes."""

    def __init__(self, load: Callable[[Path], T], error: type[Exception]) -> None:
        self._load = load
        self._error = error
        self._cache: dict[Path, tuple[float, T]] = {}

    def __call__(self, path: Path) -> T:
        try:
            mtime = path.stat().st_mtime
        except OSError as e:
            raise self._error(f"{path}: cannot read it: {e.strerror}") from None
        cached = self._cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        loaded = self._load(path)
        self._cache[path] = (mtime, loaded)
        return loaded
