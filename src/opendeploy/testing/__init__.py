"""Public test doubles and helpers (used by the test suite and by bench/).

``testing.server``: start a real ``opendeploy server`` process, or serve an app in-process.
``testing.agents``: register instances and run real ``opendeploy agent`` processes.
``testing.proxy``: an HTTP proxy that loses or cuts the server's answers (lost-answer tests).
"""

from __future__ import annotations

__all__: list[str] = []
