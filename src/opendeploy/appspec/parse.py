"""Find, read and parse an EC2/on-premises AppSpec file into a validated ``AppSpec``.

YAML is read as YAML 1.1 with PyYAML's safe loader, which gives the same scalar types as the
official agent's ``YAML.load`` (``version: 0.0`` is a float, an unquoted ``mode: 0644`` is the
integer 420). Aliases (``*name``) are refused: Psych 4 (Ruby ≥ 3.1), which modern official
agents run on, refuses them too, so an appspec using them would not deploy on AWS either, and
refusing them rules out "billion laughs" expansion.

Hostile input is refused before the YAML is built, with a message naming the problem: a file
over :data:`MAX_APPSPEC_BYTES`, nesting deeper than :data:`MAX_NESTING` levels (the loaders
recurse per level), an integer of more than :data:`MAX_INTEGER_DIGITS` digits (Python refuses
to convert those), a NUL or other control character (YAML forbids them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path, PurePosixPath
from typing import Final

import yaml

from opendeploy.appspec._rules import one_line, show
from opendeploy.appspec.model import AppSpec
from opendeploy.appspec.schema import build_appspec
from opendeploy.errors import AppSpecError

__all__ = [
    "APPSPEC_NAMES",
    "MAX_APPSPEC_BYTES",
    "MAX_INTEGER_DIGITS",
    "MAX_NESTING",
    "declared_os",
    "find_appspec",
    "load_appspec",
    "parse_appspec",
    "read_appspec_text",
]

#: The names looked for at the top of a bundle when none is given, in the agent's order.
APPSPEC_NAMES: Final = ("appspec.yaml", "appspec.yml")
_DEFAULT_NAME: Final = "appspec.yml"
_DOCS: Final = "http://docs.aws.amazon.com/codedeploy/latest/userguide/reference-appspec-file.html"

#: The largest AppSpec file read, in bytes. A real one is a few KiB; parsing costs about 7 s and
#: 80 MiB per MiB in pure Python, so anything this large is a mistake or an attack.
MAX_APPSPEC_BYTES: Final = 1024 * 1024
#: The deepest nesting of lists and mappings accepted (a real appspec needs 5).
MAX_NESTING: Final = 64
#: The most digits an integer may have (a timeout or a mode needs 5).
MAX_INTEGER_DIGITS: Final = 100
_INTEGER_LIKE: Final = re.compile(r"[-+]?[0-9][0-9_:]*")
# What the YAML 1.1 reader refuses: C0 controls but TAB, LF, CR; DEL; C1 controls but NEL;
# lone surrogates; U+FFFE and U+FFFF.
_FORBIDDEN_CHARACTER: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"
)


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


def _check_structure(text: str, source: str) -> None:
    """Refuse what would make the loaders crash or crawl, before they build anything.

    One pass over the parser's events (both parsers keep a state stack, not the call stack):
    the size, the characters, the nesting depth and the integer lengths. libyaml is asked first;
    where it stops at a syntax error (it also stops at 1,000 nested flow levels), the
    pure-Python parser looks again, and a syntax error ends that pass quietly: the loader then
    reports it with its line and column.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_APPSPEC_BYTES:
        raise AppSpecError(_too_large(source, size))
    if (bad := _FORBIDDEN_CHARACTER.search(text)) is not None:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise AppSpecError(
            f"{source}: line {line}, column {column}: the character U+{ord(bad.group()):04X} "
            "(a NUL or another control character) is not allowed in YAML"
        )
    loaders: list[type[yaml.SafeLoader] | type[yaml.CSafeLoader]] = [yaml.SafeLoader]
    if _FAST_LOADER is not None:
        loaders.insert(0, _FAST_LOADER)
    for loader_class in loaders:
        try:
            _scan_events(loader_class(text), source)
        except yaml.MarkedYAMLError as exc:
            if "maximum nesting depth" in str(exc.problem):
                # libyaml stops at 1,000 levels: deeper than our limit, and the pure-Python
                # scanner would take quadratic time to say so.
                mark = exc.problem_mark
                where = f" line {mark.line + 1}:" if mark is not None else ""
                raise AppSpecError(_too_deep(source, where)) from None
            continue
        except yaml.YAMLError:
            continue
        return


def _scan_events(loader: yaml.SafeLoader | yaml.CSafeLoader, source: str) -> None:
    depth = 0
    try:
        while (event := loader.get_event()) is not None:
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise AppSpecError(_too_deep(source, _line(event)))
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif (
                isinstance(event, yaml.ScalarEvent)
                and not event.style  # plain: None (pure parser) or "" (libyaml)
                and len(event.value) > MAX_INTEGER_DIGITS
                and _INTEGER_LIKE.fullmatch(event.value)
            ):
                raise AppSpecError(
                    f"{source}:{_line(event)} the number "
                    f"{event.value[:20]}… has {len(event.value)} digits; numbers in an AppSpec "
                    f"file may have at most {MAX_INTEGER_DIGITS}"
                )
    finally:
        loader.dispose()


def _too_deep(source: str, where: str) -> str:
    return (
        f"{source}:{where} lists and mappings are nested more than {MAX_NESTING} levels deep; "
        "an AppSpec file needs far fewer"
    )


def _line(event: yaml.Event) -> str:
    mark = event.start_mark
    return f" line {mark.line + 1}:" if mark is not None else ""


def _too_large(source: str, size: int) -> str:
    return (
        f"{source}: the AppSpec file is {size} bytes, over the limit of {MAX_APPSPEC_BYTES} "
        "bytes; an AppSpec file lists hooks, files and permissions, not content"
    )


def _load_yaml(text: str, source: str) -> object:
    _check_structure(text, source)
    try:
        loaded, data = _load_yaml_fast(text)
        if loaded:
            return data
        return _load_yaml_pure(text, source)
    except RecursionError:
        # A backstop: _check_structure bounds the depth well below the interpreter's limit.
        raise AppSpecError(f"{source}: the YAML is nested too deeply to be read") from None


def _load_yaml_pure(text: str, source: str) -> object:
    try:
        loader = _NoAliasLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses a NUL or another control character
        raise AppSpecError(one_line(f"{source}: invalid YAML: {exc}")) from None
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


def _refuse_nul(data: object, source: str) -> None:
    """Refuse a NUL in any string: YAML escapes (``"a\\0b"``) make one, and no path, user name
    or other value of an AppSpec file can hold it (the system calls would refuse it later with
    a Python error)."""
    todo: list[tuple[str, object]] = [("", data)]
    while todo:
        where, value = todo.pop()
        if isinstance(value, str) and "\0" in value:
            field = where.lstrip(".") or "the document"
            raise AppSpecError(
                f"{source}: {field}: {show(value)} contains a NUL character, which no path, "
                "name or other AppSpec value can hold"
            )
        if isinstance(value, dict):
            for key, item in value.items():
                todo.append((f"{where} (a key)", key))
                todo.append((f"{where}.{key}", item))
        elif isinstance(value, list):
            todo.extend((f"{where}[{index}]", item) for index, item in enumerate(value))


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
    data = _load_yaml(text, source)
    _refuse_nul(data, source)
    return build_appspec(
        data,
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
    text = read_appspec_text(path, source=name)
    return parse_appspec(
        text, source=name, max_event_timeout=max_event_timeout, allowed_events=allowed_events
    )


def read_appspec_text(path: Path, *, source: str | None = None) -> str:
    """Read the AppSpec file at ``path`` as UTF-8 text, refusing one over
    :data:`MAX_APPSPEC_BYTES` before reading it; errors name the file by ``source``."""
    name = source if source is not None else path.name
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_APPSPEC_BYTES + 1)
            if len(data) > MAX_APPSPEC_BYTES:
                raise AppSpecError(_too_large(name, os.fstat(handle.fileno()).st_size))
    except OSError as exc:
        raise AppSpecError(
            one_line(f"{name}: cannot read the AppSpec file {path}: {exc.strerror or exc}")
        ) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AppSpecError(
            f"{name}: the AppSpec file {path} is not UTF-8 text (byte {exc.start})"
        ) from exc


def declared_os(path: Path) -> object:
    """The raw ``os`` value of the AppSpec file at ``path`` (``None`` if absent or unreadable).

    For refusing a revision built for another OS before anything else is judged: the rest of
    the file may well be invalid for a Linux host (e.g. permissions on Windows).
    """
    try:
        data = _load_yaml(read_appspec_text(path), path.name)
    except AppSpecError:
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
