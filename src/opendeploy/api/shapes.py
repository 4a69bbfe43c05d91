"""Model-driven input validation/decoding and output serialization, shared by both protocols.

Input: the decoded wire document (JSON or CBOR) is checked against the operation's input shape
(types, required members, length/value ranges, patterns, enums: what botocore's client-side
validation does not all do) and turned into handler input with model member names, aware UTC
datetimes for timestamps and bytes for blobs. The first rule broken raises ``ShapeViolation``,
which names the member path, the value and the rule; ``api.errors`` picks the AWS code.

Output: the handler's dict is walked along the output shape; None values are dropped, unknown
members are a server bug (``OutputShapeError``), and timestamps and blobs are encoded by the
protocol's ``Codec``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from opendeploy.errors import OpenDeployError

_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class Codec:
    """How one protocol writes the scalar types that JSON and CBOR do not share.

    ``*_in`` raise ``TypeError``/``ValueError`` for a value of the wrong kind.
    """

    timestamp_in: Callable[[Any], datetime]
    timestamp_out: Callable[[datetime], Any]
    blob_in: Callable[[Any], bytes]
    blob_out: Callable[[bytes], Any]


#: (member name or None for a list/map element, shape name), outermost first.
MemberChain = tuple[tuple[str | None, str], ...]


class ShapeViolation(OpenDeployError, ValueError):
    """A request member breaks a rule of its shape.

    ``kind`` is ``"missing"`` for an absent required member, ``"invalid"`` otherwise; ``chain``
    lists the members from the top-level one down to the failing one, for picking the AWS code.
    """

    def __init__(
        self, path: str, chain: MemberChain, kind: Literal["missing", "invalid"], message: str
    ) -> None:
        super().__init__(message)
        self.path = path
        self.chain = chain
        self.kind = kind
        self.message = message


class OutputShapeError(OpenDeployError, TypeError):
    """A handler returned something its operation's output shape does not allow (a server bug)."""


def decode_input(shape: Any | None, document: Mapping[str, Any], codec: Codec) -> dict[str, Any]:
    """Validate ``document`` against the input ``shape`` and return handler input."""
    if shape is None:
        return {}
    return _decode_structure(shape, document, "", (), codec)


def encode_output(shape: Any | None, data: Mapping[str, Any] | None, codec: Codec) -> Any:
    """Serialize handler output along the output ``shape`` into a JSON/CBOR-ready tree."""
    if shape is None or not data:
        if data and shape is None:
            raise OutputShapeError(f"the operation has no output, but the handler returned {data}")
        return {}
    return _encode(shape, data, shape.name, codec)


# -- input ---------------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 120 else text[:117] + "…"


def _fail(path: str, chain: MemberChain, value: Any, rule: str, *, missing: bool = False) -> None:
    raise ShapeViolation(
        path,
        chain,
        "missing" if missing else "invalid",
        f"1 validation error detected: Value {_describe(value)} at '{path}' failed to satisfy "
        f"constraint: {rule}",
    )


def _decode(shape: Any, value: Any, path: str, chain: MemberChain, codec: Codec) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            _fail(path, chain, value, "Member must be a structure (an object)")
        return _decode_structure(shape, value, path, chain, codec)
    if kind == "list":
        return _decode_list(shape, value, path, chain, codec)
    if kind == "map":
        return _decode_map(shape, value, path, chain, codec)
    if kind == "string":
        return _decode_string(shape, value, path, chain)
    if kind == "boolean":
        if not isinstance(value, bool):
            _fail(path, chain, value, "Member must be a boolean")
        return value
    if kind in _INT_RANGES:
        return _decode_integer(shape, value, path, chain)
    if kind in ("double", "float"):
        if isinstance(value, str) and value in _SPECIAL_DOUBLES:
            return _SPECIAL_DOUBLES[value]
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(path, chain, value, "Member must be a number")
        return float(value)
    if kind == "timestamp":
        try:
            return codec.timestamp_in(value)
        except (TypeError, ValueError, OverflowError, OSError):
            _fail(path, chain, value, "Member must be a timestamp (epoch seconds)")
    if kind == "blob":
        try:
            return codec.blob_in(value)
        except (TypeError, ValueError):
            _fail(path, chain, value, "Member must be a blob")
    raise OutputShapeError(f"{shape.name}: shape type {kind!r} is not supported")


def _decode_structure(
    shape: Any, value: Mapping[str, Any], path: str, chain: MemberChain, codec: Codec
) -> dict[str, Any]:
    members = shape.members
    for name in shape.required_members:
        if value.get(name) is None:
            member_path = f"{path}.{name}" if path else name
            _fail(
                member_path,
                (*chain, (name, members[name].name)),
                None,
                "Member must not be null",
                missing=True,
            )
    out: dict[str, Any] = {}
    for name, member in members.items():
        item = value.get(name)
        if item is None:  # JSON null means "not given", as AWS services read it
            continue
        member_path = f"{path}.{name}" if path else name
        out[name] = _decode(member, item, member_path, (*chain, (name, member.name)), codec)
    return out


def _check_count(
    shape: Any, count: int, value: Any, path: str, chain: MemberChain, what: str
) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and count < low:
        _fail(path, chain, value, f"Member must have {what} greater than or equal to {low}")
    if high is not None and count > high:
        _fail(path, chain, value, f"Member must have {what} less than or equal to {high}")


def _decode_list(shape: Any, value: Any, path: str, chain: MemberChain, codec: Codec) -> list[Any]:
    if not isinstance(value, list | tuple):
        _fail(path, chain, value, "Member must be a list")
    _check_count(shape, len(value), value, path, chain, "length")
    item_shape = shape.member
    return [
        _decode(item_shape, item, f"{path}[{i}]", (*chain, (None, item_shape.name)), codec)
        for i, item in enumerate(value)
    ]


def _decode_map(
    shape: Any, value: Any, path: str, chain: MemberChain, codec: Codec
) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path, chain, value, "Member must be a map (an object)")
    _check_count(shape, len(value), value, path, chain, "length")
    out: dict[str, Any] = {}
    for key, item in value.items():
        key_path = f"{path}[{key!r}]"
        decoded_key = _decode_string(shape.key, key, key_path, (*chain, (None, shape.key.name)))
        if item is None:
            continue
        out[decoded_key] = _decode(
            shape.value, item, key_path, (*chain, (None, shape.value.name)), codec
        )
    return out


def _decode_string(shape: Any, value: Any, path: str, chain: MemberChain) -> str:
    if not isinstance(value, str):
        _fail(path, chain, value, "Member must be a string")
    if value == "" and (shape.metadata.get("min") or 0) >= 1:
        # AWS reads an empty name as a missing one: ApplicationNameRequiredException, not
        # InvalidApplicationNameException.
        _fail(path, chain, value, "Member must not be empty", missing=True)
    _check_count(shape, len(value), value, path, chain, "length")
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        _fail(path, chain, value, f"Member must satisfy enum value set: [{', '.join(enum)}]")
    pattern = shape.metadata.get("pattern")
    if pattern and not _matches(pattern, value):
        _fail(path, chain, value, f"Member must satisfy regular expression pattern: {pattern}")
    return str(value)


def _decode_integer(shape: Any, value: Any, path: str, chain: MemberChain) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, chain, value, f"Member must be an {shape.type_name}")
    low, high = _INT_RANGES[shape.type_name]
    if not low <= value <= high:
        _fail(path, chain, value, f"Member must fit in a 32/64-bit {shape.type_name}")
    _check_count(shape, value, value, path, chain, "value")
    return int(value)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _matches(pattern: str, value: str) -> bool:
    # The CodeDeploy model writes its patterns unanchored ("[A-Za-z0-9+=,.@_-]*") but means the
    # whole value, as the service enforces it; explicitly anchored patterns are searched.
    compiled = _compiled(pattern)
    if pattern.startswith("^"):
        return compiled.search(value) is not None
    return compiled.fullmatch(value) is not None


# -- output --------------------------------------------------------------------------------------


def _encode(shape: Any, value: Any, path: str, codec: Codec) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            raise OutputShapeError(f"{path}: expected a mapping for {shape.name}, got {value!r}")
        members = shape.members
        out: dict[str, Any] = {}
        for name, item in value.items():
            if item is None:
                continue
            if name not in members:
                raise OutputShapeError(
                    f"{path}: {shape.name} has no member {name!r} (members: {', '.join(members)})"
                )
            out[name] = _encode(members[name], item, f"{path}.{name}", codec)
        return out
    if kind == "list":
        if isinstance(value, str | bytes | Mapping):
            raise OutputShapeError(f"{path}: expected a list for {shape.name}, got {value!r}")
        return [_encode(shape.member, item, f"{path}[{i}]", codec) for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, Mapping):
            raise OutputShapeError(f"{path}: expected a mapping for {shape.name}, got {value!r}")
        return {
            str(k): _encode(shape.value, v, f"{path}[{k!r}]", codec)
            for k, v in value.items()
            if v is not None
        }
    if kind == "string":
        if not isinstance(value, str):
            raise OutputShapeError(f"{path}: expected a string, got {value!r}")
        return str.__str__(value) if type(value) is not str else value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise OutputShapeError(f"{path}: expected a boolean, got {value!r}")
        return value
    if kind in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OutputShapeError(f"{path}: expected an integer, got {value!r}")
        return int(value)
    if kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OutputShapeError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if kind == "timestamp":
        return codec.timestamp_out(_as_aware(value, path))
    if kind == "blob":
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, bytes | bytearray):
            raise OutputShapeError(f"{path}: expected bytes, got {value!r}")
        return codec.blob_out(bytes(value))
    raise OutputShapeError(f"{path}: shape type {kind!r} is not supported")


def _as_aware(value: Any, path: str) -> datetime:
    if isinstance(value, datetime):
        # Naive datetimes are UTC by this project's convention (SQLite drops the zone).
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    raise OutputShapeError(f"{path}: expected a datetime, got {value!r}")
