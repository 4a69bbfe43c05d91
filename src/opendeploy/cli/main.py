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
    "notifications": "opendeploy.cli.notifications:notifications",
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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The subcommands, each with its whole one-line summary (click cuts them at ~45
        characters, mid-sentence)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, summary(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


#: ``opendeploy --help`` lists the project's own commands first, by task; then the API's.
_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Get started", ("quickstart", "local")),
    ("Deploy and follow", ("deploy", "push", "watch", "logs", "notifications")),
    ("Run the server and the hosts", ("server", "agent", "instance")),
    ("Shell", ("completion",)),
)
_API_SECTION = "AWS CodeDeploy API (the `aws deploy` commands, same options)"


def summary(command: click.Command) -> str:
    """A command's one-line summary: its short help, else its help's first line, whole."""
    if command.short_help:
        return command.short_help
    return (command.help or "").strip().split("\n", 1)[0].strip()


class _LazyGroup(SuggestingGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands in sections (the project's own first), each with its whole summary."""
        names = self.list_commands(ctx)
        listed: set[str] = set()
        for title, members in _SECTIONS:
            rows = self._rows(ctx, [n for n in members if n in names])
            listed.update(members)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = self._rows(ctx, [n for n in names if n not in listed])
        if rest:
            with formatter.section(_API_SECTION):
                formatter.write_dl(rest)

    def _rows(self, ctx: click.Context, names: list[str]) -> list[tuple[str, str]]:
        rows = []
        for name in names:
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, summary(command)))
        return rows

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
