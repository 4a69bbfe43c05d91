"""Which instances a deployment targets: tag filters and tag sets over instance tags (pure).

AWS's rules (user guide, "Working with instances for a deployment group"):
- a list of tag filters selects the instances that match **any** filter (OR);
- a tag set is a list of tag groups; an instance must match **every** group (AND), and within a
  group any one filter (OR);
- a filter of type ``KEY_ONLY`` matches an instance that has the key (any value), ``VALUE_ONLY``
  one that has the value under any key, ``KEY_AND_VALUE`` one with exactly that pair.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


class TagFilterType(enum.StrEnum):
    KEY_ONLY = "KEY_ONLY"
    VALUE_ONLY = "VALUE_ONLY"
    KEY_AND_VALUE = "KEY_AND_VALUE"


@dataclass(frozen=True)
class TagFilter:
    """One filter; ``key``/``value`` are ignored where the type says so."""

    type: TagFilterType
    key: str = ""
    value: str = ""

    @classmethod
    def from_wire(cls, shape: Mapping[str, str]) -> TagFilter:
        """From an API ``{"Key", "Value", "Type"}`` shape; ValueError names a bad ``Type``."""
        raw = shape.get("Type") or TagFilterType.KEY_AND_VALUE
        try:
            kind = TagFilterType(raw)
        except ValueError:
            raise ValueError(
                f"Type: {raw!r} is not one of KEY_ONLY, VALUE_ONLY, KEY_AND_VALUE"
            ) from None
        return cls(kind, shape.get("Key") or "", shape.get("Value") or "")

    def matches(self, tags: Mapping[str, str]) -> bool:
        """Whether an instance with ``tags`` matches this filter."""
        if self.type is TagFilterType.KEY_ONLY:
            return self.key in tags
        if self.type is TagFilterType.VALUE_ONLY:
            return self.value in tags.values()
        return self.key in tags and tags[self.key] == self.value


def matches_any(tags: Mapping[str, str], filters: Sequence[TagFilter]) -> bool:
    """OR over a filter list (an empty list matches nothing)."""
    return any(f.matches(tags) for f in filters)


def matches_tag_set(tags: Mapping[str, str], tag_set: Sequence[Sequence[TagFilter]]) -> bool:
    """AND over the groups of a tag set, OR within each group (an empty set matches nothing)."""
    groups = [g for g in tag_set if g]
    return bool(groups) and all(matches_any(tags, group) for group in groups)


def select_targets(
    instances: Iterable[tuple[str, Mapping[str, str]]],
    *,
    filters: Sequence[TagFilter] = (),
    tag_set: Sequence[Sequence[TagFilter]] = (),
) -> list[str]:
    """Names of the ``(name, tags)`` instances that ``filters`` or ``tag_set`` select, sorted.

    A group uses either a filter list or a tag set (the API refuses both together); passing both
    here selects the union, as separate EC2 and on-premises selections do.
    """
    chosen = {
        name
        for name, tags in instances
        if matches_any(tags, filters) or matches_tag_set(tags, tag_set)
    }
    return sorted(chosen)
