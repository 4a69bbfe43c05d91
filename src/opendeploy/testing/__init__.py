"""Public test doubles and helpers (used by the test suite and by bench/).

``testing.server``: start a real ``opendeploy server`` process, or serve an app in-process.
"""

from __future__ import annotations

__all__: list[str] = []
