"""The wire: SigV4, both CodeDeploy protocols, model-driven validation, errors, handlers.

Entry points: ``api.app.create_app`` (the ASGI app) and ``api.handlers.load_handlers`` (the
operation table). Nothing is re-exported here, so importing a submodule stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
