"""From the loaded YAML value to a validated ``AppSpec``: version, os, files, hooks.

The checks follow the official agent (agent-behaviour §2.2–2.6) in its order: version, os,
file_exists_behavior, hooks, files, permissions; the first broken rule is reported. Unknown
top-level keys are ignored, as the agent does (``resources`` is for Lambda/ECS appspecs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from typing import Final

from opendeploy.appspec._rules import MISSING, OFFICIAL, field_error, ruby_inspect, ruby_s
from opendeploy.appspec.model import AppSpec, FileExistsBehavior, FileMapping, Script
from opendeploy.appspec.permissions import build_permissions
from opendeploy.errors import AppSpecError

__all__ = ["DEFAULT_SCRIPT_TIMEOUT", "SUPPORTED_OSES", "build_appspec", "check_host_os"]

SUPPORTED_OSES: Final = ("linux", "windows")
DEFAULT_SCRIPT_TIMEOUT: Final = 3600
_WHOLE_NUMBER: Final = re.compile(r"[+-]?[0-9]+")

_EMPTY: Final = (
    f"{OFFICIAL} the application specification file was empty. Make sure your AppSpec file "
    "defines at minimum the 'version' and 'os' properties."
)


def empty_error(source: str) -> AppSpecError:
    """The error for a file that holds no YAML document (empty, blank or only comments)."""
    return AppSpecError(f"{source}: the file is empty; it must define version and os — {_EMPTY}")


def build_appspec(
    data: object,
    *,
    source: str,
    max_event_timeout: int | None,
    allowed_events: Collection[str] | None,
) -> AppSpec:
    """Validate the loaded YAML document ``data`` and build the ``AppSpec``."""
    if data is None:
        raise empty_error(source)
    if not isinstance(data, dict):
        raise AppSpecError(
            f"{source}: the top level is a {_yaml_kind(data)}, not a mapping of keys "
            "(version, os, files, permissions, hooks)"
        )
    version = _version(data.get("version", MISSING))
    os_name = _os(data.get("os", MISSING))
    behavior = _file_exists_behavior(data.get("file_exists_behavior"))
    hooks = _hooks(data.get("hooks"), source, max_event_timeout, allowed_events)
    files = _files(data.get("files"))
    permissions = build_permissions(data.get("permissions"), os_name=os_name)
    return AppSpec(
        version=version,
        os=os_name,
        files=files,
        permissions=permissions,
        hooks=hooks,
        file_exists_behavior=behavior,
    )


def _yaml_kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _version(value: object) -> float:
    # YAML 1.1 reads `0.0` as a float and `0` as an int; both equal Ruby's 0.0. A quoted "0.0"
    # is a string and is refused, as by the agent. bool is excluded: False == 0 in Python only.
    if not isinstance(value, bool) and isinstance(value, int | float) and value == 0:
        return 0.0
    raise field_error(
        "version",
        value,
        "must be the number 0.0 (unquoted)",
        f"{OFFICIAL} an invalid version value ({ruby_s(value)}) was entered in the application "
        'specification file. Make sure your AppSpec file specifies "0.0" as the version, and then '
        "try again.",
    )


def _os(value: object) -> str:
    # `windows` parses (a Windows agent accepts it); running it is out of our scope.
    if isinstance(value, str) and value in SUPPORTED_OSES:
        return value
    raise field_error(
        "os",
        value,
        "must be linux or windows",
        f"{OFFICIAL} the application specification file specifies an unsupported operating "
        f'system ({ruby_s(value)}). Specify either "linux" or "windows" in the os section of the '
        "AppSpec file, and then try again.",
    )


def check_host_os(appspec_os: str, *, host_os: str = "linux") -> None:
    """Refuse an appspec written for another OS than this host's, naming the ``os`` field.

    Parsing accepts ``windows`` (the appspec is valid for a Windows agent); deploying it to a
    Linux host is refused as the official Linux agent refuses it (its supported OS list is
    ``linux`` only), but with a message that says why instead of its "specify linux or windows".
    """
    if appspec_os == host_os:
        return
    raise field_error(
        "os",
        appspec_os,
        f"this host runs {host_os.capitalize()}, and an appspec with os: {appspec_os} deploys "
        f"only to {appspec_os.capitalize()} instances; set os: {host_os} to deploy this revision "
        "here",
        f"{OFFICIAL} the application specification file specifies an unsupported operating "
        f'system ({appspec_os}). Specify either "linux" or "windows" in the os section of the '
        "AppSpec file, and then try again.",
    )


def _file_exists_behavior(value: object) -> FileExistsBehavior | None:
    if value is None:
        return None
    # Exact upper-case values only: the agent does not upper-case the appspec key (it does
    # upper-case the deployment's override, which is the installer's concern).
    if isinstance(value, str) and value in FileExistsBehavior.__members__:
        return FileExistsBehavior(value)
    raise field_error(
        "file_exists_behavior",
        value,
        "must be exactly DISALLOW, OVERWRITE or RETAIN (upper case)",
        f"{OFFICIAL} an invalid file_exists_behavior value ({ruby_s(value)}) was entered in the "
        "application specification file. Make sure your AppSpec file specifies one of "
        "DISALLOW,OVERWRITE,RETAIN as the file_exists_behavior, and then try again.",
    )


def _files(value: object) -> tuple[FileMapping, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise field_error("files", value, "must be a list of {source, destination} entries")
    return tuple(_file_mapping(entry, f"files[{i}]") for i, entry in enumerate(value))


def _file_mapping(entry: object, path: str) -> FileMapping:
    if not isinstance(entry, dict):
        raise field_error(path, entry, "must be a mapping with source and destination")
    source, destination = entry.get("source"), entry.get("destination")
    if source is None:
        raise field_error(
            f"{path}.source",
            entry.get("source", MISSING),
            "every files entry needs a source (a path in the bundle; / for all of it)",
            f"{OFFICIAL} the application specification file specifies a destination file, but "
            "no source file. Update the files section of the AppSpec file, and then try again.",
        )
    if destination is None:
        raise field_error(
            f"{path}.destination",
            entry.get("destination", MISSING),
            "every files entry needs a destination directory",
            f"{OFFICIAL} the application specification file specifies only a source file "
            f"({ruby_s(source)}). Add the name of the destination file to the files section of "
            "the AppSpec file, and then try again.",
        )
    return FileMapping(
        source=_path_str(source, f"{path}.source"),
        destination=_path_str(destination, f"{path}.destination"),
    )


def _path_str(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise field_error(path, value, "must be a non-empty path string (quote it)")
    return value


def _hooks(
    value: object,
    source: str,
    max_event_timeout: int | None,
    allowed_events: Collection[str] | None,
) -> dict[str, tuple[Script, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise field_error("hooks", value, "must be a mapping of lifecycle event to scripts")
    for name in value:
        if not isinstance(name, str) or not name:
            raise field_error("hooks", name, "event names must be non-empty strings")
    if allowed_events is not None:
        unknown = [name for name in value if name not in allowed_events]
        if unknown:
            raise field_error(
                "hooks",
                unknown,
                "unknown lifecycle events for this deployment (allowed: "
                f"{', '.join(sorted(allowed_events))})",
                f"{source} file contains unknown lifecycle events: {ruby_inspect(unknown)}",
            )
    hooks: dict[str, tuple[Script, ...]] = {}
    for name, scripts in value.items():
        if scripts is None:  # `Event:` with nothing under it: ignored, as by the agent
            continue
        path = f"hooks.{name}"
        if not isinstance(scripts, list):
            raise field_error(path, scripts, "must be a list of scripts, e.g. - location: a.sh")
        parsed = tuple(_script(entry, f"{path}[{i}]") for i, entry in enumerate(scripts))
        if max_event_timeout is not None:
            _check_event_total(scripts, parsed, path, max_event_timeout)
        hooks[name] = parsed
    return hooks


def _script(entry: object, path: str) -> Script:
    if not isinstance(entry, dict):
        raise field_error(path, entry, "must be a mapping with location (and timeout, runas, sudo)")
    location = entry.get("location")
    if isinstance(location, list | dict):
        raise field_error(f"{path}.location", location, "must be a path string")
    text = "" if location is None else ruby_s(location).strip()
    if not text:
        raise field_error(
            f"{path}.location",
            entry.get("location", MISSING),
            "every script needs a location (a path in the bundle)",
            f"{OFFICIAL} the application specification file specifies a script with no location "
            "value. Specify the location in the hooks section of the AppSpec file, and then try "
            "again.",
        )
    return Script(
        location=text,
        timeout=_timeout(entry.get("timeout"), f"{path}.timeout"),
        runas=_runas(entry.get("runas"), f"{path}.runas"),
        # Ruby truthiness, as the agent tests it: everything but nil and false is true.
        # (`in (None, False)` would be wrong: 0 == False in Python, while Ruby's 0 is true.)
        sudo=not (entry.get("sudo") is None or entry.get("sudo") is False),
    )


_BAD_TIMEOUT: Final = (
    f"{OFFICIAL} an invalid timeout value was provided for a script in the application "
    "specification file. Make corrections in the hooks section of the AppSpec file, and then try "
    "again."
)


def _timeout(value: object, path: str) -> int:
    if value is None:
        return DEFAULT_SCRIPT_TIMEOUT
    seconds: int | None = None
    # The agent calls Ruby's to_i: whole numbers, numeric strings and floats (truncated) work.
    # Text with trailing garbage ("5m", which to_i reads as 5 seconds) is refused here.
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float):
        seconds = int(value) if math.isfinite(value) else None
    elif isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        seconds = int(value.strip())
    if seconds is None or seconds <= 0:
        raise field_error(path, value, "must be a whole number of seconds above 0", _BAD_TIMEOUT)
    return seconds


def _runas(value: object, path: str) -> str | None:
    if value is None:
        return None
    text = ruby_s(value).strip() if not isinstance(value, list | dict) else ""
    if not text:
        raise field_error(path, value, "must be a user name")
    return text


def _check_event_total(
    entries: list[object], scripts: tuple[Script, ...], path: str, limit: int
) -> None:
    """AWS documents at most ``limit`` seconds of script time per event; sum the given timeouts.

    Only timeouts written in the appspec count: scripts without one default to 3600 s each (as
    with the agent), and AWS accepts several of those in one event, so counting the default
    would refuse common, valid appspecs.
    """
    total = 0
    for i, (entry, script) in enumerate(zip(entries, scripts, strict=True)):
        if not isinstance(entry, dict) or entry.get("timeout") is None:
            continue
        total += script.timeout
        if total > limit:
            if total == script.timeout:
                rule = f"exceeds {limit} s for the event"
            else:
                rule = (
                    f"brings the event's total to {total} s, which exceeds {limit} s for the event"
                )
            raise AppSpecError(
                f"{path}[{i}].timeout: {script.timeout} {rule} (the timeouts of one event's "
                f"scripts may add up to at most {limit} s)"
            )
