"""Print API responses exactly as aws-cli v1 does: ``--output json|text|table`` and ``--query``.

aws-cli's own formatters (``awscli.formatter``) are used as a library, so the JSON indentation,
the text layout and the table borders are aws-cli's byte for byte, including how paginated results
are merged (``build_full_result``) or streamed page by page (text). Timestamps are printed as they
came over the wire unless the profile sets ``cli_timestamp_format = iso8601``, which is aws-cli
v1's behaviour too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import jmespath
from awscli.formatter import get_formatter
from botocore.utils import parse_timestamp

__all__ = ["OUTPUT_FORMATS", "OutputSettings", "configure_parsers", "render", "resolve_output"]

OUTPUT_FORMATS = ("json", "text", "table")


@dataclass(frozen=True)
class OutputSettings:
    """How one command prints: format, optional JMESPath query, table colours."""

    output: str = "json"
    query: Any = None  # a compiled jmespath expression
    color: str = "auto"


def resolve_output(
    *,
    output: str | None,
    query: str | None,
    color: str | None,
    scoped_config: Mapping[str, Any],
    environ: Mapping[str, str] = os.environ,
) -> OutputSettings:
    """``--output`` > ``AWS_DEFAULT_OUTPUT`` > the profile's ``output`` > ``json``, as aws-cli.

    Raises ``ValueError`` naming the bad value (a format or a JMESPath expression).
    """
    chosen = output or environ.get("AWS_DEFAULT_OUTPUT") or scoped_config.get("output") or "json"
    if chosen not in OUTPUT_FORMATS:
        raise ValueError(
            f"--output: '{chosen}' is not a valid output format; choose one of: "
            + ", ".join(OUTPUT_FORMATS)
        )
    compiled = None
    if query is not None:
        try:
            compiled = jmespath.compile(query)
        except jmespath.exceptions.JMESPathError as exc:
            raise ValueError(f"--query: '{query}' is not a JMESPath expression: {exc}") from exc
    return OutputSettings(output=chosen, query=compiled, color=color or "auto")


def configure_parsers(session: Any, scoped_config: Mapping[str, Any]) -> None:
    """Make botocore leave timestamps and blobs as aws-cli v1 prints them.

    ``cli_timestamp_format``: ``wire`` (or ``none``, the default) keeps the value as sent (epoch
    seconds for CodeDeploy), ``iso8601`` prints ISO 8601 strings. Raises ``ValueError`` otherwise.
    """
    timestamp_format = scoped_config.get("cli_timestamp_format") or "wire"
    if timestamp_format in ("wire", "none"):
        timestamp_parser: Any = _identity
    elif timestamp_format == "iso8601":
        timestamp_parser = _iso8601
    else:
        raise ValueError(
            f"cli_timestamp_format: '{timestamp_format}' is not valid; "
            "use 'wire', 'none' or 'iso8601'"
        )
    factory = session.get_component("response_parser_factory")
    factory.set_parser_defaults(timestamp_parser=timestamp_parser, blob_parser=_identity)


def render(
    command_name: str, response: Any, settings: OutputSettings, stream: IO[str] | None = None
) -> None:
    """Print ``response`` (a dict or a botocore PageIterator) the way aws-cli would.

    ``command_name`` is the operation name (``GetApplication``); the table format uses it as the
    title, as aws-cli does.
    """
    formatter = get_formatter(settings.output, settings)
    formatter(command_name, response, stream if stream is not None else sys.stdout)


def _identity(value: Any) -> Any:
    return value


def _iso8601(value: Any) -> str:
    return str(parse_timestamp(value).isoformat())
