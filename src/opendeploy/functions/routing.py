"""Which version an invocation through an alias runs (pure).

An alias points to ``function_version`` and may route a share of its invocations to additional
versions (``RoutingConfig.AdditionalVersionWeights``, each a fraction 0.0–1.0); the rest go to
``function_version``. Each invocation is routed on its own, by a uniform draw in [0, 1).
"""

from __future__ import annotations

from collections.abc import Mapping


def pick_version(primary: str, weights: Mapping[str, float], draw: float) -> str:
    """The version an invocation runs given the uniform ``draw`` in [0, 1)."""
    edge = 0.0
    for version, weight in sorted(weights.items()):
        edge += weight
        if draw < edge:
            return version
    return primary
