"""What the AppSpecs of Lambda and ECS deployments share: one document in YAML or JSON, keys
matched case-insensitively (as aws-cli does), and a ``Hooks`` list of one-key mappings from a
lifecycle event to a function. Pure; each platform's parser passes its own error class."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from opendeploy.appspec.parse import MAX_APPSPEC_BYTES
from opendeploy.errors import AppSpecError


def load_document(text: str, error: type[AppSpecError]) -> Any:
    """The AppSpec's tree: JSON when it starts with ``{``, YAML otherwise (bounded in size)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_APPSPEC_BYTES:
        raise error(f"The AppSpec is larger than {MAX_APPSPEC_BYTES} bytes.")
    try:
        if text.lstrip().startswith("{"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise error(f"The AppSpec is neither valid YAML nor JSON: {e}") from None


def hook_functions(
    raw: Any, known: Sequence[str], platform: str, error: type[AppSpecError]
) -> dict[str, str]:
    """``Hooks`` as {event: function}, events spelled as in ``known`` (the platform's events,
    matched case-insensitively); ``platform`` names them in errors ("a Lambda", "an ECS")."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise error("'Hooks' must be a list of one-key mappings.")
    spelled = {h.lower(): h for h in known}
    hooks: dict[str, str] = {}
    for item in raw:
        if not isinstance(item, dict) or len(item) != 1:
            raise error(f"Hook entry {item!r} must map one lifecycle event to a function name.")
        ((event, function),) = item.items()
        canonical = spelled.get(str(event).lower())
        if canonical is None:
            raise error(f"Hook {event!r} is not {platform} lifecycle event ({', '.join(known)}).")
        if canonical in hooks:
            raise error(f"Hook {canonical} is given more than once.")
        if isinstance(function, bool) or not isinstance(function, (str, int)):
            raise error(f"Hook {canonical} must name a function, not {function!r}.")
        name = str(function).strip()
        if not name:
            raise error(f"Hook {canonical} must not be empty.")
        hooks[canonical] = name
    return hooks
