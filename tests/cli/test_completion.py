"""``opendeploy completion bash|zsh``: the scripts, and bash and zsh completing command lines."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pexpect
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


def _output_line(child: pexpect.spawn[str], prefix: str) -> str:
    """The rest of the next output line that starts with ``prefix`` (not the echoed input)."""
    child.expect(rf"\r\n{prefix}([^\r\n]*)\r\n")
    assert isinstance(child.match, re.Match)
    return child.match.group(1)


def _zsh_tab(tmp_path: Path, typed: str) -> str:
    """The command line after typing ``typed`` and pressing TAB in an interactive ``zsh -f``
    that loaded the script after ``compinit``, as a user's ``.zshrc`` would.

    zsh's completion widgets only run inside the line editor, so this drives a real one in a
    pseudo-terminal: TAB, then ``X``, then Ctrl-A and ``echo BUF:`` in front, and Enter, which
    prints the completed line by itself on an output line of its own.
    """
    zsh = shutil.which("zsh")
    assert zsh, "zsh is not installed: scripts/install installs it (apt-get install zsh)"
    env = clean_env(tmp_path, PATH=f"{BIN}:/usr/bin:/bin", TERM="dumb", PS1="", RPS1="")
    child = pexpect.spawn(zsh, ["-f", "-i"], env=env, encoding="utf-8", timeout=30)
    try:
        # Emacs bindings whatever $EDITOR says; -D: no .zcompdump in the home directory.
        for line in (
            "bindkey -e",
            "autoload -U compinit && compinit -D",
            'eval "$(opendeploy completion zsh)"',
            "print -r -- READY:${_comps[opendeploy]}",
        ):
            child.sendline(line)
        assert _output_line(child, "READY:") == "_opendeploy_completion"
        child.send(typed + "\t")
        child.send("X\x01echo BUF:\r")
        completed = _output_line(child, "BUF:")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return completed


def test_zsh_loads_the_script_and_completes(tmp_path: Path) -> None:
    assert _zsh_tab(tmp_path, "opendeploy create-app") == "opendeploy create-application X"
    assert (
        _zsh_tab(tmp_path, "opendeploy create-deployment --file-exists-behavior OVER")
        == "opendeploy create-deployment --file-exists-behavior OVERWRITE X"
    )
