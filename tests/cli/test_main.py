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
