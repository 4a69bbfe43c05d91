"""``opendeploy completion bash|zsh``: the scripts, and bash completing real command lines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli._aws_cli import BIN, OPENDEPLOY, clean_env, run


def _complete(tmp_path: Path, words: list[str]) -> list[str]:
    """What click's completion protocol answers for ``words`` (the last one being completed)."""
    env = clean_env(
        tmp_path,
        _OPENDEPLOY_COMPLETE="bash_complete",
        COMP_WORDS=" ".join(["opendeploy", *words]),
        COMP_CWORD=str(len(words)),
    )
    result = run(OPENDEPLOY, env=env)
    assert result.returncode == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines()]


def test_scripts_for_bash_and_zsh(tmp_path: Path) -> None:
    bash = run(OPENDEPLOY, "completion", "bash", env=clean_env(tmp_path))
    assert bash.returncode == 0
    assert "_OPENDEPLOY_COMPLETE=bash_complete" in bash.stdout
    assert "complete -o nosort -F _opendeploy_completion opendeploy" in bash.stdout
    zsh = run(OPENDEPLOY, "completion", "zsh", env=clean_env(tmp_path))
    assert zsh.returncode == 0
    assert "#compdef opendeploy" in zsh.stdout
    fish = run(OPENDEPLOY, "completion", "fish", env=clean_env(tmp_path))
    assert fish.returncode == 2


def test_protocol_completes_commands_options_and_enum_values(tmp_path: Path) -> None:
    assert _complete(tmp_path, ["create-deployment-gr"]) == ["create-deployment-group"]
    assert "deployment-successful" in _complete(tmp_path, ["wait", ""])
    assert _complete(tmp_path, ["create-deployment", "--s3-loc"]) == ["--s3-location"]
    assert _complete(tmp_path, ["create-deployment", "--file-exists-behavior", ""]) == [
        "DISALLOW",
        "OVERWRITE",
        "RETAIN",
    ]
    assert _complete(tmp_path, ["list-applications", "--output", "t"]) == ["text", "table"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_loads_the_script_and_completes(tmp_path: Path) -> None:
    script = (
        'eval "$(opendeploy completion bash)"\n'
        "COMP_WORDS=(opendeploy register-on-premises-inst)\n"
        "COMP_CWORD=1\n"
        "_opendeploy_completion opendeploy\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = clean_env(tmp_path, PATH=f"{BIN}:/usr/bin:/bin")
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["register-on-premises-instance"]
