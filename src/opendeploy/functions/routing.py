"""Which version an invocation through an alias runs (pure).

An alias points to ``function_version`` and may route a share of its invocations to additional
versions (``RoutingConfig.AdditionalVersionWeights``, each a fraction 0.0–1.0); the rest go to
``function_version``. Each invocation is routed on its own, by a draw in [0, 1).

The draws (:class:`SpreadDraws`) are a Weyl sequence from a random start rather than independent
random numbers: each looks random, but any run of N consecutive invocations splits within about
one invocation of the configured weight (independent draws stray by sqrt(N·w·(1−w)): ±9 of 1,000
at 10 %), so a canary's share is what its configuration says from the first requests on.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping

#: The golden ratio's fractional part: the step that spreads a Weyl sequence most evenly.
_STEP = 0.6180339887498949


def pick_version(primary: str, weights: Mapping[str, float], draw: float) -> str:
    """The version an invocation runs given the uniform ``draw`` in [0, 1)."""
    edge = 0.0
    for version, weight in sorted(weights.items()):
        edge += weight
        if draw < edge:
            return version
    return primary


class SpreadDraws:
    """Draws in [0, 1) for :func:`pick_version`, evenly spread (see the module docstring).
    Safe to call from several threads (``itertools.count`` is atomic under the GIL)."""

    def __init__(self, start: float | None = None) -> None:
        self._start = random.random() if start is None else start
        self._count = itertools.count()

    def __call__(self) -> float:
        return (self._start + next(self._count) * _STEP) % 1.0
