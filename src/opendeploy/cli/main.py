"""The ``opendeploy`` command: one executable for server, agent, local deployments and the CLI."""

from __future__ import annotations

import difflib
import importlib

import click

from opendeploy.cli.aws_names import AWS_COMMANDS

# Subcommands live in their own modules and are imported only when used, so that
# `opendeploy agent` on a host never loads server code. name -> "module:attribute".
_COMMANDS: dict[str, str] = {
    "agent": "opendeploy.cli.agent:agent",
    "deploy": "opendeploy.cli.deploy:deploy",
    "instance": "opendeploy.cli.instance:instance",
    "local": "opendeploy.cli.local:local",
    "logs": "opendeploy.cli.logs:logs",
    "push": "opendeploy.cli.push:push",
    "quickstart": "opendeploy.cli.quickstart:quickstart",
    "server": "opendeploy.cli.server:server",
    "watch": "opendeploy.cli.watch:watch",
    **AWS_COMMANDS,  # the `aws deploy` commands generated from the model, `wait`, `completion`
}


class SuggestingGroup(click.Group):
    """A group that answers a misspelt subcommand with the close names, as aws-cli does."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # click's own suggestions (8.4+) come from ``self.commands``, which is empty in a lazy
        # group, and older clicks have none: answer a misspelt name with the close ones, as
        # aws-cli does ("maybe you meant"), in the wording of the API name hints.
        name = args[0] if args else ""
        if (
            name
            and not name.startswith("-")
            and not ctx.resilient_parsing
            and name not in self.list_commands(ctx)
        ):
            ctx.fail(f"No such command '{name}'.{did_you_mean(name, self.list_commands(ctx))}")
        return super().resolve_command(ctx, args)


class _LazyGroup(SuggestingGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module_name, attr = _COMMANDS[cmd_name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    return None
                raise
            command = getattr(module, attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


def did_you_mean(wrong: str, known: list[str]) -> str:
    """`` Did you mean 'a'?`` (or ``one of 'a', 'b'``) for names close to ``wrong``, else ``""``."""
    close = difflib.get_close_matches(wrong, known, n=3, cutoff=0.6)
    if not close:
        return ""
    quoted = ", ".join(f"'{name}'" for name in close)
    return f" Did you mean {quoted}?" if len(close) == 1 else f" Did you mean one of {quoted}?"


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opendeploy")
def main() -> None:
    """OpenDeploy: self-hosted deployments that speak the AWS CodeDeploy API."""
