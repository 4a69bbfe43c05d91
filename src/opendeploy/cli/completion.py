"""``opendeploy completion bash|zsh``: print the shell's completion script.

The script is click's own (the same that ``_OPENDEPLOY_COMPLETE=bash_source opendeploy`` prints);
it calls ``opendeploy`` back for each completion, so every generated command, its options and the
model's enum values (``--deployment-config-name``, ``--file-exists-behavior`` …) complete.

    eval "$(opendeploy completion bash)"        # in ~/.bashrc
    eval "$(opendeploy completion zsh)"         # in ~/.zshrc
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

__all__ = ["completion", "completion_script"]

_PROG = "opendeploy"
_COMPLETE_VAR = "_OPENDEPLOY_COMPLETE"


def completion_script(shell: str) -> str:
    """The completion script for ``shell`` (``bash`` or ``zsh``)."""
    from opendeploy.cli.main import main

    cls = get_completion_class(shell)
    if cls is None:  # click.Choice below keeps other names out
        raise click.BadParameter(f"no completion support for {shell}", param_hint="SHELL")
    return cls(main, {}, _PROG, _COMPLETE_VAR).source()


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL; load it with eval "$(opendeploy completion SHELL)"."""
    click.echo(completion_script(shell))
