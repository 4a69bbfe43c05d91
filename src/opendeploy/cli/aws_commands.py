"""The ``aws deploy`` commands generated from the CodeDeploy model: one click command per operation.

``opendeploy create-deployment-group --application-name A …`` takes the same options as
``aws deploy create-deployment-group``: names are the input members in aws-cli's kebab case,
booleans are ``--flag/--no-flag``, lists take several values after one option (``--instance-names
a b c``) or the option repeated, and structures take aws-cli's shorthand
(``Key=Name,Value=web,Type=KEY_AND_VALUE``), JSON, or ``file://path``. aws-cli's own shorthand and
parameter-file code (``awscli.shorthand``, ``awscli.argprocess``, ``awscli.paramfile``) does the
parsing, so the grammar and its error messages are aws-cli's.

aws-cli behaviour kept: ``--s3-location``/``--github-location`` build ``revision`` for
create-deployment, register-application-revision and get-application-revision; ``list-*``
auto-paginate (``--max-items``, ``--starting-token``, ``--no-paginate``); ``--cli-input-json``;
``wait deployment-successful``; the output formats (:mod:`opendeploy.cli.output`); errors on
stderr as ``An error occurred (Code) when calling the Op operation: message`` with exit status 255,
usage errors with 2. Added: a wrong name is answered with the close ones, an unreachable server
with its URL and how to start one, a rejected signature with the key and where it came from.
"""

from __future__ import annotations

import difflib
import html
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NoReturn

import click
from botocore import xform_name

from opendeploy.cli.aws_names import OPERATIONS
from opendeploy.cli.connection import DATA_DIR
from opendeploy.cli.main import SuggestingGroup

# Also ``aws_commands.<OperationName>`` and ``aws_commands.wait``, built by ``__getattr__``.
__all__ = ["build_operation_command", "build_wait_group", "service_model"]

#: Exit status of aws-cli v1 for every failure after parsing (service errors, bad values).
EXIT_FAILURE = 255

_REVISION_OPERATIONS = frozenset(
    {"CreateDeployment", "RegisterApplicationRevision", "GetApplicationRevision"}
)
_S3_LOCATION_KEYS = ("bucket", "key", "bundleType", "eTag", "version")
_GITHUB_LOCATION_KEYS = ("repository", "commitId")
_SIGNATURE_ERRORS = frozenset(
    {
        "InvalidSignatureException",
        "UnrecognizedClientException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "SignatureDoesNotMatch",
        "InvalidClientTokenId",
    }
)


# ----------------------------------------------------------------------------------------------
# The model


@cache
def service_model() -> Any:
    """The CodeDeploy ``botocore.model.ServiceModel`` from OpenDeploy's data directory."""
    from botocore.loaders import Loader
    from botocore.model import ServiceModel

    loader = Loader(extra_search_paths=[str(DATA_DIR)], include_default_search_paths=False)
    return ServiceModel(loader.load_service_model("codedeploy", "service-2"), "codedeploy")


@cache
def _paginators() -> Mapping[str, Any]:
    data = json.loads((DATA_DIR / "codedeploy" / "2014-10-06" / "paginators-1.json").read_text())
    result: Mapping[str, Any] = data["pagination"]
    return result


@cache
def _waiters() -> Mapping[str, Any]:
    data = json.loads((DATA_DIR / "codedeploy" / "2014-10-06" / "waiters-2.json").read_text())
    result: Mapping[str, Any] = data["waiters"]
    return result


#: The model's "… with the user or Amazon Web Services account", and the verb before it.
_ACCOUNT = re.compile(
    r"(?:(associated|registered|unique) )?with the (?:applicable )?"
    r"(?:Amazon Web Services )?user or Amazon Web Services account"
)


def _on_this_server(match: re.Match[str]) -> str:
    verb = match.group(1)
    return "on this server" if verb in (None, "associated") else f"{verb} on this server"


def _plain(documentation: str) -> str:
    """Model documentation (HTML) as one plain paragraph, in this server's words."""
    text = re.sub(r"<[^>]+>", " ", documentation or "")
    text = re.sub(r"\s+", " ", html.unescape(text)).strip()
    text = _ACCOUNT.sub(_on_this_server, text)
    return re.sub(r"(?:your |the )?Amazon Web Services account", "the account", text)


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?\.)(\s|$)", text)
    return match.group(1) if match else text


# ----------------------------------------------------------------------------------------------
# Arguments


@dataclass(frozen=True)
class _Argument:
    """One input member as an aws-cli argument (duck-types awscli's ``CLIArgument``)."""

    name: str  # kebab case, e.g. "ec2-tag-filters"
    member: str  # model member, e.g. "ec2TagFilters"
    argument_model: Any
    required: bool

    @property
    def cli_name(self) -> str:
        return f"--{self.name}"

    @property
    def py_name(self) -> str:
        return self.name.replace("-", "_")

    @property
    def is_list(self) -> bool:
        return bool(self.argument_model.type_name == "list")

    @property
    def is_boolean(self) -> bool:
        return bool(self.argument_model.type_name == "boolean")


class _ParamError(click.ClickException):
    """A value that cannot be parsed (aws-cli's ``ParamError``): exit 255, aws-cli's wording."""

    exit_code = EXIT_FAILURE

    def show(self, file: Any = None) -> None:
        click.echo(f"\n{self.message}", err=True)


class _ModelParamType(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """A string, with the model's enum values (or a structure's keys) offered for completion."""

    name = "text"

    def __init__(self, model: Any) -> None:
        self._model = model

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[Any]:
        from click.shell_completion import CompletionItem

        model = self._model.member if self._model.type_name == "list" else self._model
        values: list[str] = list(getattr(model, "enum", None) or [])
        if not values and model.type_name == "structure":
            values = [f"{key}=" for key in model.members]
        return [CompletionItem(v) for v in values if v.startswith(incomplete)]


def _unpack(argument: _Argument, value: Any, operation_kebab: str) -> Any:
    """A command-line value -> the Python value botocore takes, the way aws-cli does it."""
    from awscli.argprocess import ParamError, ParamShorthandParser, unpack_cli_arg
    from awscli.paramfile import LOCAL_PREFIX_MAP, ResourceLoadingError, get_paramfile

    if argument.is_boolean:
        return value
    try:
        raw = value[0] if isinstance(value, list) and len(value) == 1 else value
        loaded = get_paramfile(raw, LOCAL_PREFIX_MAP)
        if loaded is not None:
            value = loaded
        parsed = ParamShorthandParser()(
            argument, value, f"process-cli-arg.deploy.{operation_kebab}"
        )
        if parsed is not None:
            return parsed
        return unpack_cli_arg(argument, value)
    except ResourceLoadingError as exc:
        raise _ParamError(f"Error parsing parameter '{argument.cli_name}': {exc}") from exc
    except ParamError as exc:
        raise _ParamError(str(exc)) from exc
    except (ValueError, TypeError) as exc:
        raise _ParamError(f"Error parsing parameter '{argument.cli_name}': {exc}") from exc


def parse_member(operation_name: str, member: str, value: str) -> Any:
    """``value`` for ``member`` of ``operation_name``'s input, parsed as aws-cli parses it
    (shorthand, JSON or ``file://``): for commands of our own that take a structure."""
    operation = service_model().operation_model(operation_name)
    shape = operation.input_shape.members[member]
    argument = _Argument(xform_name(member, "-"), member, shape, False)
    return _unpack(argument, value, xform_name(operation_name, "-"))


def _arguments(input_shape: Any, hidden: Iterable[str] = ()) -> list[_Argument]:
    if input_shape is None:
        return []
    required = set(input_shape.required_members)
    return [
        _Argument(
            name=xform_name(member, "-"),
            member=member,
            argument_model=shape,
            required=member in required,
        )
        for member, shape in input_shape.members.items()
        if member not in hidden
    ]


def _option_for(argument: _Argument) -> click.Option:
    help_text = _plain(argument.argument_model.documentation)
    if argument.required:
        help_text = f"[required] {help_text}"
    if argument.is_boolean:
        return click.Option(
            [f"--{argument.name}/--no-{argument.name}", argument.py_name],
            default=None,
            help=help_text,
        )
    return click.Option(
        [argument.cli_name, argument.py_name],
        multiple=argument.is_list,
        type=_ModelParamType(argument.argument_model),
        help=help_text,
        metavar="VALUE..." if argument.is_list else "VALUE",
    )


class _AwsCommand(click.Command):
    """A command whose list options take several values, as aws-cli's (``nargs='+'``) do."""

    def __init__(self, *args: Any, list_options: frozenset[str] = frozenset(), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._list_options = list_options

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _expand_list_values(args, self._list_options))


def _expand_list_values(args: Sequence[str], list_options: frozenset[str]) -> list[str]:
    """``--names a b --x`` -> ``--names a --names b --x`` for the options in ``list_options``."""
    expanded: list[str] = []
    current: str | None = None
    for arg in args:
        if arg.startswith("--"):
            current = arg if arg in list_options else None
            expanded.append(arg)
            continue
        if current is not None and expanded[-1] != current:
            expanded.append(current)
        expanded.append(arg)
    return expanded


# ----------------------------------------------------------------------------------------------
# Global options (aws-cli's, accepted after the command name)


def _global_options(paginated: bool) -> list[click.Option]:
    options = [
        click.Option(
            ["--output", "_output"],
            type=click.Choice(["json", "text", "table"]),
            help="Output format (default: the profile's `output`, else json).",
        ),
        click.Option(["--query", "_query"], help="A JMESPath query to filter the response."),
        click.Option(
            ["--endpoint-url", "_endpoint_url"],
            help="The server URL (default: AWS_ENDPOINT_URL, OPENDEPLOY_ENDPOINT, the profile, "
            "or a local `opendeploy server`).",
        ),
        click.Option(["--profile", "_profile"], help="A profile from the shared files."),
        click.Option(["--region", "_region"], help="The region to sign for."),
        click.Option(
            ["--no-verify-ssl", "_no_verify_ssl"],
            is_flag=True,
            help="Do not verify the server's TLS certificate.",
        ),
        click.Option(
            ["--color", "_color"],
            type=click.Choice(["on", "off", "auto"]),
            default="auto",
            help="Color in the table output: auto (on a terminal), on or off.",
        ),
        click.Option(
            ["--cli-read-timeout", "_cli_read_timeout"],
            type=float,
            help="Seconds to wait for an answer (default 60).",
        ),
        click.Option(
            ["--cli-connect-timeout", "_cli_connect_timeout"],
            type=float,
            help="Seconds to wait for the connection (default 60).",
        ),
        click.Option(
            ["--cli-input-json", "_cli_input_json"],
            help="All arguments as one JSON document (or file://path); flags given too win.",
        ),
    ]
    if paginated:
        options += [
            click.Option(
                ["--starting-token", "_starting_token"],
                help="Where to resume: the NextToken of an earlier, truncated output.",
            ),
            click.Option(
                ["--max-items", "_max_items"],
                type=int,
                help="Return at most this many items, and a NextToken to continue.",
            ),
            click.Option(
                ["--no-paginate", "_no_paginate"],
                is_flag=True,
                help="Make one call only, returning the server's first page.",
            ),
        ]
    return options


# ----------------------------------------------------------------------------------------------
# Building commands


def build_operation_command(operation_name: str) -> click.Command:
    """The click command for one CodeDeploy operation (``CreateApplication``)."""
    model = service_model()
    operation = model.operation_model(operation_name)
    kebab = xform_name(operation_name, "-")
    paginator = _paginators().get(operation_name)
    hidden = {paginator["input_token"]} if paginator else set()
    arguments = _arguments(operation.input_shape)
    shown = [a for a in arguments if a.member not in hidden]
    params: list[click.Parameter] = [_option_for(a) for a in shown]
    for argument in arguments:
        if argument.member in hidden:
            option = _option_for(argument)
            option.hidden = True  # aws-cli keeps --next-token, undocumented; it disables paging
            params.append(option)
    if operation_name in _REVISION_OPERATIONS:
        params += _revision_location_options()
    params += _global_options(paginated=paginator is not None)
    documentation = _plain(operation.documentation)

    def callback(**values: Any) -> None:
        _run_operation(operation_name, kebab, arguments, values, paginator)

    return _AwsCommand(
        kebab,
        params=params,
        callback=callback,
        help=documentation,
        short_help=_first_sentence(documentation),
        list_options=frozenset(a.cli_name for a in arguments if a.is_list),
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _revision_location_options() -> list[click.Option]:
    return [
        click.Option(
            ["--s3-location", "_s3_location"],
            help="The revision in S3: bucket=B,key=K,bundleType=zip|tar|tgz[,eTag=E,version=V] "
            "(or JSON). Sets --revision.",
        ),
        click.Option(
            ["--github-location", "_github_location"],
            help="The revision in GitHub: repository=owner/repo,commitId=SHA (or JSON). "
            "Sets --revision.",
        ),
    ]


def build_wait_group() -> click.Group:
    """``wait <waiter>``: one subcommand per waiter in the model (``deployment-successful``)."""
    group = SuggestingGroup(
        "wait",
        help="Wait until a condition is met, polling like aws-cli (exit 255 if it fails).",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    model = service_model()
    for waiter_name, spec in _waiters().items():
        operation = model.operation_model(spec["operation"])
        arguments = _arguments(operation.input_shape)
        kebab = xform_name(waiter_name, "-")
        doc = (
            f"Wait until {spec['operation']} reports success; polls every {spec['delay']} s, "
            f"at most {spec['maxAttempts']} times."
        )

        def callback(
            _waiter: str = waiter_name,
            _arguments: list[_Argument] = arguments,
            _kebab: str = kebab,
            **values: Any,
        ) -> None:
            _run_waiter(_waiter, _kebab, _arguments, values)

        params: list[click.Parameter] = [_option_for(a) for a in arguments]
        params += _global_options(paginated=False)
        group.add_command(
            _AwsCommand(
                kebab,
                params=params,
                callback=callback,
                help=doc,
                short_help=doc,
                list_options=frozenset(a.cli_name for a in arguments if a.is_list),
                context_settings={"help_option_names": ["-h", "--help"]},
            )
        )
    return group


def __getattr__(name: str) -> click.Command:
    """``aws_commands.CreateApplication`` / ``aws_commands.wait``: built on first access."""
    if name == "wait":
        return _cached_wait()
    if name in OPERATIONS.values():
        return _cached_command(name)
    raise AttributeError(name)


@cache
def _cached_command(operation_name: str) -> click.Command:
    return build_operation_command(operation_name)


@cache
def _cached_wait() -> click.Group:
    return build_wait_group()


# ----------------------------------------------------------------------------------------------
# Running


@dataclass
class _Invocation:
    """What one run needs after parsing: connection, client, output settings."""

    connection: Any
    client: Any
    output: Any


def _prepare(values: Mapping[str, Any]) -> _Invocation:
    from botocore.exceptions import ProfileNotFound

    from opendeploy.cli.connection import (
        ConnectionOptions,
        CredentialsNotFoundError,
        resolve_connection,
    )
    from opendeploy.cli.output import configure_parsers, resolve_output

    options = ConnectionOptions(
        endpoint_url=values.get("_endpoint_url"),
        profile=values.get("_profile"),
        region=values.get("_region"),
        verify_ssl=not values.get("_no_verify_ssl"),
        read_timeout=values.get("_cli_read_timeout"),
        connect_timeout=values.get("_cli_connect_timeout"),
    )
    try:
        connection = resolve_connection(options)
        scoped = connection.session.get_scoped_config()
        output = resolve_output(
            output=values.get("_output"),
            query=values.get("_query"),
            color=values.get("_color"),
            scoped_config=scoped,
        )
        configure_parsers(connection.session, scoped)
        client = connection.client()
    except ProfileNotFound as exc:
        _fail(str(exc))
    except (CredentialsNotFoundError, ValueError) as exc:
        _fail(str(exc))
    return _Invocation(connection=connection, client=client, output=output)


def _collect_parameters(
    operation_name: str,
    kebab: str,
    arguments: Sequence[_Argument],
    values: Mapping[str, Any],
) -> dict[str, Any]:
    """Input parameters from --cli-input-json, then the flags (which win), then the checks."""
    params: dict[str, Any] = {}
    cli_input = values.get("_cli_input_json")
    if cli_input:
        params.update(_load_cli_input_json(cli_input))
    for argument in arguments:
        value = values.get(argument.py_name)
        if value is None or (argument.is_list and not value):
            continue
        if argument.is_list:
            value = list(value)
        params[argument.member] = _unpack(argument, value, kebab)
    if operation_name in _REVISION_OPERATIONS:
        _apply_revision_location(params, values, kebab)
    missing = [a.cli_name for a in arguments if a.required and a.member not in params]
    if missing:
        raise click.UsageError(
            "the following arguments are required: " + ", ".join(missing),
        )
    return params


def _load_cli_input_json(value: str) -> dict[str, Any]:
    # awscli.paramfile must not be the first awscli module imported (circular import in awscli).
    import awscli.argprocess  # noqa: F401
    from awscli.paramfile import LOCAL_PREFIX_MAP, ResourceLoadingError, get_paramfile

    try:
        loaded = get_paramfile(value, LOCAL_PREFIX_MAP)
    except ResourceLoadingError as exc:
        raise _ParamError(f"Error parsing parameter '--cli-input-json': {exc}") from exc
    text = loaded if loaded is not None else value
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _ParamError(
            f"Error parsing parameter '--cli-input-json': Invalid JSON received: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise _ParamError("Error parsing parameter '--cli-input-json': expected a JSON object")
    return data


def _apply_revision_location(params: dict[str, Any], values: Mapping[str, Any], kebab: str) -> None:
    """aws-cli's --s3-location / --github-location customization: both become ``revision``."""
    from botocore.model import ShapeResolver

    resolver = ShapeResolver(
        {
            "S3": {
                "type": "structure",
                "members": {key: {"shape": "String"} for key in _S3_LOCATION_KEYS},
            },
            "GitHub": {
                "type": "structure",
                "members": {key: {"shape": "String"} for key in _GITHUB_LOCATION_KEYS},
            },
            "String": {"type": "string"},
        }
    )
    s3 = values.get("_s3_location")
    if s3:
        argument = _Argument("s3-location", "s3Location", resolver.get_shape_by_name("S3"), False)
        parsed = _unpack(argument, s3, kebab)
        if not all(parsed.get(k) for k in ("bucket", "key", "bundleType")):
            _fail("--s3-location must specify bucket, key and bundleType.")
        location = {k: parsed[k] for k in _S3_LOCATION_KEYS if k in parsed}
        params["revision"] = {"revisionType": "S3", "s3Location": location}
    github = values.get("_github_location")
    if github:
        argument = _Argument(
            "github-location", "gitHubLocation", resolver.get_shape_by_name("GitHub"), False
        )
        parsed = _unpack(argument, github, kebab)
        if not all(parsed.get(k) for k in _GITHUB_LOCATION_KEYS):
            _fail("--github-location must specify repository and commitId.")
        params["revision"] = {
            "revisionType": "GitHub",
            "gitHubLocation": {k: parsed[k] for k in _GITHUB_LOCATION_KEYS},
        }


def _run_operation(
    operation_name: str,
    kebab: str,
    arguments: Sequence[_Argument],
    values: Mapping[str, Any],
    paginator: Mapping[str, Any] | None,
) -> None:
    from opendeploy.cli.output import render

    params = _collect_parameters(operation_name, kebab, arguments, values)
    invocation = _prepare(values)
    method = xform_name(operation_name)
    client = invocation.client
    paginate = (
        paginator is not None
        and not values.get("_no_paginate")
        and paginator["input_token"] not in params
    )

    def call() -> Any:
        if paginate:
            config = {
                k: v
                for k, v in (
                    ("MaxItems", values.get("_max_items")),
                    ("StartingToken", values.get("_starting_token")),
                )
                if v is not None
            }
            if config:
                params["PaginationConfig"] = config
            pages = client.get_paginator(method).paginate(**params)
            # aws-cli formats lazily; build the first page here so errors surface in _guarded.
            return pages
        return getattr(client, method)(**params)

    def show(response: Any) -> None:
        render(operation_name, response, invocation.output)

    _guarded(invocation, operation_name, params, lambda: show(call()))


def _run_waiter(
    waiter_name: str, kebab: str, arguments: Sequence[_Argument], values: Mapping[str, Any]
) -> None:
    params = _collect_parameters(waiter_name, kebab, arguments, values)
    invocation = _prepare(values)
    waiter = invocation.client.get_waiter(xform_name(waiter_name))
    _guarded(invocation, waiter_name, params, lambda: waiter.wait(**params))


def _guarded(
    invocation: _Invocation,
    operation_name: str,
    params: Mapping[str, Any],
    action: Callable[[], Any],
) -> None:
    """Run ``action``; turn botocore's exceptions into aws-cli's messages plus our hints."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ParamValidationError,
        ReadTimeoutError,
        WaiterError,
    )

    connection = invocation.connection
    try:
        action()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        hints = []
        if code in _SIGNATURE_ERRORS:
            hints.append(_signature_hint(connection))
        else:
            hints.extend(_did_you_mean(invocation.client, code, params))
        _fail(str(exc), *hints)
    except (EndpointConnectionError, ConnectTimeoutError) as exc:
        url = exc.kwargs.get("endpoint_url") or connection.endpoint_url or "the endpoint"
        _fail(str(exc), _unreachable_hint(url, connection.endpoint_source))
    except ReadTimeoutError as exc:
        _fail(str(exc))
    except WaiterError as exc:
        _fail(str(exc))
    except ParamValidationError as exc:
        _fail(str(exc))
    except NoCredentialsError as exc:
        _fail(f'{exc}. You can configure credentials by running "aws configure".')
    except Exception as exc:
        # aws-cli's last resort too: the message alone, status 255 (e.g. a --query result that
        # the text format cannot lay out).
        _fail(str(exc))


def _fail(message: str, *hints: str) -> NoReturn:
    """Print like aws-cli (a blank line, then the message) on stderr and exit 255."""
    click.echo(f"\n{message}", err=True)
    for hint in hints:
        click.echo(hint, err=True)
    sys.exit(EXIT_FAILURE)


# ----------------------------------------------------------------------------------------------
# Helpful additions


# error code -> (parameter holding the wrong name, how to list the right ones)
_NAME_LOOKUPS: dict[str, tuple[str, Callable[[Any, Mapping[str, Any]], list[str]]]] = {}


def _list_all(client: Any, method: str, key: str, **kwargs: Any) -> list[str]:
    names: list[str] = []
    for page in client.get_paginator(method).paginate(**kwargs):
        names.extend(page.get(key, []))
    return names


_NAME_LOOKUPS.update(
    {
        "ApplicationDoesNotExistException": (
            "applicationName",
            lambda c, p: _list_all(c, "list_applications", "applications"),
        ),
        "DeploymentGroupDoesNotExistException": (
            "deploymentGroupName",
            lambda c, p: _list_all(
                c,
                "list_deployment_groups",
                "deploymentGroups",
                applicationName=p["applicationName"],
            ),
        ),
        "DeploymentConfigDoesNotExistException": (
            "deploymentConfigName",
            lambda c, p: _list_all(c, "list_deployment_configs", "deploymentConfigsList"),
        ),
        "InstanceNotRegisteredException": (
            "instanceName",
            lambda c, p: _list_all(c, "list_on_premises_instances", "instanceNames"),
        ),
    }
)


def _did_you_mean(client: Any, code: str, params: Mapping[str, Any]) -> list[str]:
    """``Did you mean 'web'?`` for a name the server does not know, from the names it does."""
    lookup = _NAME_LOOKUPS.get(code)
    if lookup is None:
        return []
    member, list_names = lookup
    wrong = params.get(member)
    if not isinstance(wrong, str):
        return []
    try:
        known = list_names(client, params)
    except Exception:  # a hint must never hide the real error
        return []
    close = difflib.get_close_matches(wrong, known, n=3, cutoff=0.6)
    if not close:
        return []
    quoted = ", ".join(f"'{name}'" for name in close)
    return [f"Did you mean {quoted}?" if len(close) == 1 else f"Did you mean one of {quoted}?"]


def _unreachable_hint(url: str, source: str) -> str:
    return (
        f"No OpenDeploy server answers at {url} (endpoint from {source}). Start one with "
        "`opendeploy server`, or point --endpoint-url or OPENDEPLOY_ENDPOINT at a running server."
    )


def _signature_hint(connection: Any) -> str:
    return (
        f"The server at {connection.endpoint_url or 'the configured endpoint'} rejected the "
        f"request signed with access key {connection.access_key_id} from "
        f"{connection.credentials_source} (region {connection.region}). Use the key the server "
        "wrote to <data-dir>/credentials, or choose another with --profile or AWS_ACCESS_KEY_ID."
    )
