"""The ``opendeploy`` command: one executable for server, agent, local deployments and the CLI."""

from __future__ import annotations

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


class _LazyGroup(click.Group):
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


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opendeploy")
def main() -> None:
    """OpenDeploy: self-hosted deployments that speak the AWS CodeDeploy API."""
