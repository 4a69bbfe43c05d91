"""The top-level ``opendeploy`` group, as a subprocess: a misspelt command gets the close names."""

from __future__ import annotations

from pathlib import Path

from tests.cli._aws_cli import OPENDEPLOY, clean_env, run


def test_a_misspelt_command_suggests_the_close_ones(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    typo = run(OPENDEPLOY, "create-aplication", "--application-name", "shop", env=env)
    assert typo.returncode == 2
    assert typo.stdout == ""
    assert typo.stderr.splitlines()[-1] == (
        "Error: No such command 'create-aplication'. Did you mean one of 'create-application', "
        "'get-application', 'update-application'?"
    )

    # One close name (a lazily loaded command of our own, not an aws-cli one).
    single = run(OPENDEPLOY, "qickstart", env=env)
    assert single.returncode == 2
    assert single.stderr.splitlines()[-1] == (
        "Error: No such command 'qickstart'. Did you mean 'quickstart'?"
    )

    nothing_close = run(OPENDEPLOY, "xyzzy", env=env)
    assert nothing_close.returncode == 2
    assert nothing_close.stderr.splitlines()[-1] == "Error: No such command 'xyzzy'."

    # Subcommand groups (``wait``) answer the same way; options and real commands are untouched.
    waiter = run(OPENDEPLOY, "wait", "deployment-succesful", env=env)
    assert waiter.returncode == 2
    assert "Did you mean 'deployment-successful'?" in waiter.stderr
    assert run(OPENDEPLOY, "--bogus", env=env).stderr.splitlines()[-1] == (
        "Error: No such option '--bogus'."
    )
    assert run(OPENDEPLOY, "--version", env=env).returncode == 0


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_help_groups_the_commands_with_whole_summaries(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    result = run(OPENDEPLOY, "--help", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    titles = [
        "Get started:",
        "Deploy and follow:",
        "Run the server and the hosts:",
        "Shell:",
        "AWS CodeDeploy API (the `aws deploy` commands, same options):",
    ]
    positions = [out.index(title) for title in titles]
    assert positions == sorted(positions)
    # The project's commands come before every generated one, each summary whole.
    api = out.index(titles[-1])
    for name in ("quickstart", "local", "deploy", "push", "watch", "logs", "server", "agent"):
        assert out.index(f"\n  {name} ") < api
    assert "Poll the OpenDeploy (or CodeDeploy) server for host commands and run them." in _flat(
        out
    )
    assert "..." not in out.split("Options:", 1)[1]
    assert out.index("\n  create-application ") > api
    assert "Lists the applications registered on this server." in _flat(out)
    assert "Amazon Web Services account" not in out


def test_subcommand_summaries_are_whole(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    result = run(OPENDEPLOY, "instance", "--help", env=env)
    assert result.returncode == 0, result.stderr
    flat = _flat(result.stdout)
    assert "Register NAME, issue its key, and write the agent's configuration files." in flat
    assert "..." not in result.stdout.split("Commands:", 1)[1]


def test_every_option_has_help(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    for command in ("list-applications", "server", "create-deployment-group"):
        result = run(OPENDEPLOY, command, "--help", env=env)
        assert result.returncode == 0, result.stderr
        assert "Amazon Web Services account" not in result.stdout
        lines = result.stdout.split("Options:", 1)[1].splitlines() + [""]
        for line, following in zip(lines, lines[1:], strict=False):
            # An option with help has it on its line, or (a long name) on the next, indented.
            if line.startswith("  -") and "  " not in line.strip():
                assert following.startswith("   ") and not following.startswith("  -"), (
                    command,
                    line,
                )
