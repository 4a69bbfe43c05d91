"""Canary and linear traffic shifting between two server pools: the per-host weights (pure).

A load balancer spreads new requests over its enabled servers in proportion to their weights.
To send ``p`` % of the traffic to the green pool (``ng`` hosts) and the rest to the blue pool
(``nb`` hosts), each green host gets ``p · nb`` and each blue host ``(100 − p) · ng``: the green
pool's share is then ``ng·p·nb / (ng·p·nb + nb·(100−p)·ng) = p / 100`` exactly. HAProxy's
weights are whole numbers up to 256, so the pair used is the one of 1..256 nearest that ratio:
within half a point of ``p`` for any realistic fleet, and never further than weights can go
(one pool at 1, the other at 256: ten green hosts against one blue cannot get less than 3.8 %).
At 0 % and 100 % one pool has weight 0 (enabled and health-checked, sent nothing new)
and the other :data:`FULL_WEIGHT`.

:func:`shift_leader` names the green host whose AllowTraffic step runs the whole schedule (the
engine holds it until every other green host is in the pool at weight 0, and holds the others'
AfterAllowTraffic until it is done): one step owns the weights, so two steps never race.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: The weight of a host taking its full share: HAProxy's largest. Every host a shift touched
#: ends with it (blue hosts after BlockTraffic too), so that a later deployment finds equal
#: weights.
FULL_WEIGHT = 256


def pool_weights(blue: Iterable[str], green: Iterable[str], percent: int) -> dict[str, int]:
    """Each host's weight for ``percent`` % of new requests on ``green``, the rest on ``blue``."""
    blues, greens = sorted(blue), sorted(green)
    if not 0 <= percent <= 100:
        raise ValueError(f"percent: {percent} is not within 0..100")
    if not greens:
        raise ValueError("no green host to shift traffic to")
    if not blues or percent == 100:
        return {**dict.fromkeys(blues, 0), **dict.fromkeys(greens, FULL_WEIGHT)}
    if percent == 0:
        return {**dict.fromkeys(blues, FULL_WEIGHT), **dict.fromkeys(greens, 0)}
    green_w, blue_w = _closest_pair(len(blues), len(greens), percent)
    return {**dict.fromkeys(blues, blue_w), **dict.fromkeys(greens, green_w)}


def _closest_pair(nb: int, ng: int, percent: int) -> tuple[int, int]:
    """The (green, blue) weights in 1..FULL_WEIGHT whose green share is nearest ``percent``
    (ties: the larger weights, which HAProxy spreads more smoothly)."""
    best: tuple[float, int, int] = (float("inf"), 0, 0)
    for green_w in range(FULL_WEIGHT, 0, -1):
        # The blue weight that gives exactly ``percent`` with this green weight, rounded.
        exact = ng * green_w * (100 - percent) / (nb * percent)
        blue_w = min(FULL_WEIGHT, max(1, round(exact)))
        share = 100 * ng * green_w / (ng * green_w + nb * blue_w)
        error = abs(share - percent)
        if error < best[0] - 1e-9:
            best = (error, green_w, blue_w)
    return best[1], best[2]


def green_share(weights: Mapping[str, int], green: Iterable[str]) -> float:
    """The percentage of new requests the ``green`` hosts get under ``weights``."""
    total = sum(weights.values())
    greens = set(green)
    return 100.0 * sum(w for h, w in weights.items() if h in greens) / total if total else 0.0


def shift_leader(green: Iterable[str]) -> str:
    """The green host whose AllowTraffic runs the schedule (the first by name)."""
    return min(green)
