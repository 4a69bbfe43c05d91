"""The public entry points: parse_appspec, load_appspec, find_appspec, and the package surface."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

import opendeploy.appspec
from opendeploy.appspec import find_appspec, load_appspec, parse_appspec
from opendeploy.domain.lifecycle import LOCAL_DEFAULT_ORDER
from opendeploy.errors import AppSpecError

MINIMAL = "version: 0.0\nos: linux\n"
ISSUE_EXAMPLE = MINIMAL + "hooks:\n  BeforeInstall:\n    - location: a.sh\n      timeout: 4000\n"


def test_exported_members() -> None:
    # Submodules appear in the package's namespace once anything imports them (ecs_spec,
    # lambda_spec …): they are not exports.
    exported = {
        name
        for name, value in vars(opendeploy.appspec).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    } - {"annotations"}
    assert sorted(opendeploy.appspec.__all__) == sorted(exported)
    assert {"parse_appspec", "load_appspec", "find_appspec"} <= set(opendeploy.appspec.__all__)


def test_issue_example_message() -> None:
    with pytest.raises(AppSpecError) as info:
        parse_appspec(ISSUE_EXAMPLE)
    assert "hooks.BeforeInstall[0].timeout: 4000 exceeds 3600 s for the event" in str(info.value)
    assert str(info.value).startswith("hooks.BeforeInstall[0].timeout: 4000 exceeds 3600 s")


def test_event_limit_is_configurable_and_can_be_disabled() -> None:
    assert parse_appspec(ISSUE_EXAMPLE, max_event_timeout=7200).hooks["BeforeInstall"][0].timeout
    assert parse_appspec(ISSUE_EXAMPLE, max_event_timeout=None).scripts_for("BeforeInstall")


def test_any_event_name_without_allowed_events() -> None:
    spec = parse_appspec(MINIMAL + "hooks:\n  Whatever:\n    - location: w.sh\n")
    assert spec.scripts_for("Whatever")[0].location == "w.sh"


def test_local_default_events_plus_custom() -> None:
    text = MINIMAL + "hooks:\n  ApplicationStop:\n  Custom:\n    - location: c.sh\n"
    allowed = [*LOCAL_DEFAULT_ORDER, "Custom"]
    assert parse_appspec(text, allowed_events=allowed).scripts_for("Custom")
    with pytest.raises(AppSpecError, match=r'file contains unknown lifecycle events: \["Custom"\]'):
        parse_appspec(text, allowed_events=LOCAL_DEFAULT_ORDER)


def test_messages_stay_on_one_line() -> None:
    with pytest.raises(AppSpecError) as info:
        parse_appspec('version: 0.0\nos: "lin\\nux"\n')
    assert "\n" not in str(info.value)
    assert "lin\\nux" in str(info.value)


def test_result_is_frozen() -> None:
    spec = parse_appspec(MINIMAL)
    with pytest.raises(AttributeError):
        spec.os = "windows"  # type: ignore[misc]


def test_load_appspec_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "custom-spec.yml"
    path.write_text("version: 0.0\nos: linux\nfile_exists_behavior: nope\n", encoding="utf-8")
    with pytest.raises(AppSpecError, match=r'^file_exists_behavior: "nope"'):
        load_appspec(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(AppSpecError, match=r"^custom-spec\.yml: the file is empty"):
        load_appspec(path)


def test_load_appspec_passes_options(tmp_path: Path) -> None:
    path = tmp_path / "appspec.yml"
    path.write_text(ISSUE_EXAMPLE, encoding="utf-8")
    assert load_appspec(path, max_event_timeout=None).scripts_for("BeforeInstall")
    with pytest.raises(AppSpecError, match="exceeds 3600 s for the event"):
        load_appspec(path)


def test_load_appspec_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AppSpecError, match=r"^appspec\.yml: cannot read the AppSpec file"):
        load_appspec(tmp_path / "appspec.yml")


def test_load_appspec_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "appspec.yml"
    path.write_bytes(b"version: 0.0\nos: \xfflinux\n")
    with pytest.raises(AppSpecError, match="is not UTF-8 text"):
        load_appspec(path)


def test_load_appspec_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "appspec.yml"
    path.write_text("\ufeff" + MINIMAL, encoding="utf-8")
    assert load_appspec(path).os == "linux"


def test_find_appspec_default_names(tmp_path: Path) -> None:
    (tmp_path / "appspec.yaml").write_text(MINIMAL)
    assert find_appspec(tmp_path) == tmp_path / "appspec.yaml"
    # With no name given the name is appspec.yml, and the given name is looked for first.
    (tmp_path / "appspec.yml").write_text(MINIMAL)
    assert find_appspec(tmp_path) == tmp_path / "appspec.yml"
    assert find_appspec(tmp_path, "other.yml") == tmp_path / "appspec.yaml"


def test_find_appspec_given_name_first_then_fallbacks(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "spec.yml").write_text(MINIMAL)
    (tmp_path / "appspec.yml").write_text(MINIMAL)
    assert find_appspec(tmp_path, "deploy/spec.yml") == tmp_path / "deploy" / "spec.yml"
    assert find_appspec(tmp_path, "missing.yml") == tmp_path / "appspec.yml"


def test_find_appspec_ignores_directories(tmp_path: Path) -> None:
    (tmp_path / "appspec.yml").mkdir()
    with pytest.raises(AppSpecError, match="did not find an AppSpec file"):
        find_appspec(tmp_path)


def test_find_appspec_missing_message(tmp_path: Path) -> None:
    with pytest.raises(AppSpecError) as info:
        find_appspec(tmp_path, "spec.yml")
    message = str(info.value)
    assert message.startswith("spec.yml: no AppSpec file at the top of the revision")
    assert "looked for spec.yml, appspec.yaml, appspec.yml" in message
    assert (
        "The CodeDeploy agent did not find an AppSpec file within the unpacked revision directory"
        ' at revision-relative path "spec.yml". The revision was unpacked to directory'
        f' "{tmp_path}", and the AppSpec file was expected but not found at path'
        f' "{tmp_path}/spec.yml".'
    ) in message
    with pytest.raises(AppSpecError, match='revision-relative path "appspec.yml"'):
        find_appspec(tmp_path)


@pytest.mark.parametrize("name", ["/etc/passwd", "../appspec.yml", "a/../../appspec.yml"])
def test_find_appspec_refuses_names_outside_the_revision(tmp_path: Path, name: str) -> None:
    with pytest.raises(AppSpecError, match="must be a path inside the revision"):
        find_appspec(tmp_path, name)


def test_windows_parses_but_is_refused_on_this_linux_host() -> None:
    from opendeploy.appspec.schema import check_host_os

    spec = parse_appspec("version: 0.0\nos: windows\n")
    assert spec.os == "windows"
    check_host_os("linux")
    with pytest.raises(AppSpecError) as caught:
        check_host_os(spec.os)
    assert str(caught.value) == (
        'os: "windows": this host runs Linux, and an appspec with os: windows deploys only to '
        "Windows instances; set os: linux to deploy this revision here — The deployment failed "
        "because the application specification file specifies an unsupported operating system "
        '(windows). Specify either "linux" or "windows" in the os section of the AppSpec file, '
        "and then try again."
    )


def test_libyaml_and_the_python_parser_read_every_case_alike() -> None:
    # _load_yaml reads with libyaml when it can and falls back to the pure-Python loader for
    # anything libyaml refuses or that holds an alias; where both load, the data is the same.
    from opendeploy.appspec import parse as parse_module

    cases = sorted((Path(__file__).parent / "cases").glob("*.yml"))
    assert cases
    fast_loaded = 0
    for case in cases:
        text = case.read_text(encoding="utf-8")
        loaded, fast = parse_module._load_yaml_fast(text)
        if not loaded:
            continue
        fast_loaded += 1
        loader = parse_module._NoAliasLoader(text)
        try:
            assert fast == loader.get_single_data(), case.name
        finally:
            loader.dispose()
    assert fast_loaded > len(cases) // 2  # libyaml is there: the fast path is the usual one


def test_an_alias_is_left_to_the_python_parser_which_names_it() -> None:
    from opendeploy.appspec import parse as parse_module

    text = "version: 0.0\nos: linux\nbase: &b x\nother: *b\n"
    assert parse_module._load_yaml_fast(text) == (False, None)
    with pytest.raises(AppSpecError, match=r"line 4, column 8: YAML alias \*b is not allowed"):
        parse_appspec(text)


# -- hostile input: a clear AppSpecError, never a Python exception ----------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "files:\n  - source: a\0b\n", "line 4, column 14: the character U+0000"),
        (MINIMAL + "x: \x01\n", "line 3, column 4: the character U+0001"),
        (MINIMAL + "x: \x7f\n", "the character U+007F"),
        (MINIMAL + "x: \ufffe\n", "the character U+FFFE"),
        (MINIMAL + "x: " + "9" * 10_000 + "\n", "has 10000 digits"),
        (MINIMAL + "x: -" + "1_" * 3000 + "1\n", "digits; numbers in an AppSpec"),
        (MINIMAL + "x: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels"),
        (MINIMAL + "x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", "nested more than 64"),
        (MINIMAL + "x:\n" + "".join(" " * i + "- \n" for i in range(0, 400, 2)), "nested"),
        (MINIMAL + "x: " + "[" * 2000 + "\n", "nested more than 64 levels"),
    ],
    ids=[
        "nul",
        "control",
        "del",
        "noncharacter",
        "bigint",
        "bigint-underscores",
        "deep-flow-list",
        "deep-flow-map",
        "deep-block",
        "deep-unclosed",
    ],  # fmt: skip
)
def test_hostile_yaml_is_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(AppSpecError, match=re.escape(message)):
        parse_appspec(text)


def test_a_long_quoted_number_is_a_string_not_refused() -> None:
    text = MINIMAL + f"x: '{'9' * 10_000}'\n"
    assert parse_appspec(text).os == "linux"


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = opendeploy.appspec.parse.MAX_NESTING - 1  # the top-level mapping is one level
    assert parse_appspec(MINIMAL + "x: " + "[" * depth + "]" * depth + "\n").os == "linux"


def test_an_oversized_appspec_is_refused_before_it_is_read(tmp_path: Path) -> None:
    limit = opendeploy.appspec.parse.MAX_APPSPEC_BYTES
    path = tmp_path / "appspec.yml"
    path.write_text(MINIMAL + "#" * limit)
    with pytest.raises(
        AppSpecError, match=rf"appspec.yml: the AppSpec file is {limit + len(MINIMAL)} bytes"
    ):
        load_appspec(path)
    with pytest.raises(AppSpecError, match="over the limit of"):
        parse_appspec(MINIMAL + "#" * limit)
    assert opendeploy.appspec.parse.declared_os(path) is None


def test_declared_os_survives_hostile_yaml(tmp_path: Path) -> None:
    path = tmp_path / "appspec.yml"
    path.write_text("os: windows\nx: " + "[" * 5000 + "]" * 5000 + "\n")
    assert opendeploy.appspec.parse.declared_os(path) is None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (MINIMAL + 'files:\n  - source: "a\\0b"\n    destination: /x\n', "files[0].source"),
        (MINIMAL + 'hooks:\n  BeforeInstall:\n    - location: "a\\0"\n', "hooks.BeforeInstall"),
        (MINIMAL + '"k\\0": 1\n', "(a key)"),
    ],
)
def test_a_nul_made_by_an_escape_is_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(AppSpecError, match=re.escape(field) + r".* contains a NUL character"):
        parse_appspec(text)
