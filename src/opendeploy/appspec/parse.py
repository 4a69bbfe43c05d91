"""Find, read and parse an EC2/on-premises AppSpec file into a validated ``AppSpec``.

YAML is read as YAML 1.1 with PyYAML's safe loader, which gives the same scalar types as the
official agent's ``YAML.load`` (``version: 0.0`` is a float, an unquoted ``mode: 0644`` is the
integer 420). Aliases (``*name``) are refused: Psych 4 (Ruby ≥ 3.1), which modern official
agents run on, refuses them too, so an appspec using them would not deploy on AWS either, and
refusing them rules out "billion laughs" expansion.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path, PurePosixPath
from typing import Final

import yaml

from opendeploy.appspec._rules import one_line
from opendeploy.appspec.model import AppSpec
from opendeploy.appspec.schema import build_appspec
from opendeploy.errors import AppSpecError

__all__ = ["APPSPEC_NAMES", "declared_os", "find_appspec", "load_appspec", "parse_appspec"]

#: The names looked for at the top of a bundle when none is given, in the agent's order.
APPSPEC_NAMES: Final = ("appspec.yaml", "appspec.yml")
_DEFAULT_NAME: Final = "appspec.yml"
_DOCS: Final = "http://docs.aws.amazon.com/codedeploy/latest/userguide/reference-appspec-file.html"


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases where they appear (anchors alone are harmless)."""

    source = _DEFAULT_NAME

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in stubs
            mark = event.start_mark
            name = getattr(event, "anchor", "")
            raise AppSpecError(
                f"{self.source}: line {mark.line + 1}, column {mark.column + 1}: YAML alias "
                f"*{name} is not allowed (the official agent on Ruby >= 3.1 refuses it too: "
                f"Unknown alias: {name})"
            )
        return super().compose_node(parent, index)


#: libyaml's parser, where PyYAML was built with it: a tenth of the pure-Python parser's time
#: (an agent reads each revision's appspec on every deployment).
_FAST_LOADER: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _has_alias(node: yaml.Node) -> bool:
    """Whether a node appears twice in the composed tree: what an alias (``*name``) makes."""
    seen: set[int] = set()
    todo = [node]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            return True
        seen.add(id(current))
        if isinstance(current, yaml.SequenceNode):
            todo.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                todo.extend((key, value))
    return False


def _load_yaml_fast(text: str) -> tuple[bool, object]:
    """(True, data) when libyaml loads ``text`` cleanly and without aliases, else (False, None):
    the pure-Python loader then says exactly what is wrong, and where."""
    if _FAST_LOADER is None:
        return False, None
    loader = _FAST_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return True, None
        if _has_alias(node):
            return False, None
        return True, loader.construct_document(node)
    except yaml.YAMLError:
        return False, None
    finally:
        loader.dispose()


def _load_yaml(text: str, source: str) -> object:
    loaded, data = _load_yaml_fast(text)
    if loaded:
        return data
    loader = _NoAliasLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        raise AppSpecError(one_line(f"{source}: invalid YAML{where}: {problem}")) from None
    except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
        raise AppSpecError(one_line(f"{source}: invalid YAML: {exc}")) from None
    finally:
        loader.dispose()


def parse_appspec(
    text: str,
    *,
    source: str = _DEFAULT_NAME,
    max_event_timeout: int | None = 3600,
    allowed_events: Collection[str] | None = None,
) -> AppSpec:
    """Parse and validate appspec text; raise ``AppSpecError`` naming field, value and rule.

    ``max_event_timeout`` caps the sum of the timeouts written for one event's scripts (AWS
    documents 3600 s; ``None`` turns the check off). ``allowed_events`` is the list of events the
    deployment knows (local mode's ``--events`` plus the defaults); ``None`` accepts any hook
    name, as the official agent does when the deployment does not list its events.

    >>> parse_appspec("version: 0.0\\nos: linux\\n").os
    'linux'
    """
    return build_appspec(
        _load_yaml(text, source),
        source=source,
        max_event_timeout=max_event_timeout,
        allowed_events=allowed_events,
    )


def load_appspec(
    path: Path,
    *,
    source: str | None = None,
    max_event_timeout: int | None = 3600,
    allowed_events: Collection[str] | None = None,
) -> AppSpec:
    """Read ``path`` (UTF-8) and parse it; messages name the file by its name."""
    name = source if source is not None else path.name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AppSpecError(
            one_line(f"{name}: cannot read the AppSpec file {path}: {exc.strerror or exc}")
        ) from exc
    except UnicodeDecodeError as exc:
        raise AppSpecError(
            f"{name}: the AppSpec file {path} is not UTF-8 text (byte {exc.start})"
        ) from exc
    return parse_appspec(
        text, source=name, max_event_timeout=max_event_timeout, allowed_events=allowed_events
    )


def declared_os(path: Path) -> object:
    """The raw ``os`` value of the AppSpec file at ``path`` (``None`` if absent or unreadable).

    For refusing a revision built for another OS before anything else is judged: the rest of
    the file may well be invalid for a Linux host (e.g. permissions on Windows).
    """
    try:
        data = _load_yaml(path.read_text(encoding="utf-8"), path.name)
    except (OSError, UnicodeDecodeError, AppSpecError):
        return None
    return data.get("os") if isinstance(data, dict) else None


def find_appspec(archive_dir: Path, filename: str | None = None) -> Path:
    """Locate the AppSpec file at the top of an unpacked revision, as the official agent does.

    The given name if that file exists, else ``appspec.yaml``, else ``appspec.yml``. A name that
    is absolute or climbs out of the revision with ``..`` is refused.
    """
    wanted = filename if filename else _DEFAULT_NAME
    relative = PurePosixPath(wanted)
    if relative.is_absolute() or ".." in relative.parts:
        raise AppSpecError(
            f"AppSpecFilename: {wanted!r}: must be a path inside the revision (relative, no '..')"
        )
    for candidate in (wanted, *APPSPEC_NAMES):
        path = archive_dir / candidate
        if path.is_file():
            return path
    looked = ", ".join(dict.fromkeys((wanted, *APPSPEC_NAMES)))
    raise AppSpecError(
        one_line(
            f"{wanted}: no AppSpec file at the top of the revision in {archive_dir} (looked for "
            f"{looked}) — The CodeDeploy agent did not find an AppSpec file within the unpacked "
            f'revision directory at revision-relative path "{wanted}". The revision was unpacked '
            f'to directory "{archive_dir}", and the AppSpec file was expected but not found at '
            f'path "{archive_dir}/{wanted}". Consult the AWS CodeDeploy Appspec documentation for '
            f"more information at {_DOCS}"
        )
    )
