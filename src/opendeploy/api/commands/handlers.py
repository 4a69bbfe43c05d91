"""The Command API operations, bound to the engine's wake-ups.

Who may do what: only an *instance* key (issued through ``/opendeploy/v1/instance-credentials``)
acts as a host; its ``HostIdentifier`` must be the instance's registered IAM ARN (what the
official agent sends as ``AWS_HOST_IDENTIFIER``), and it may only see and answer its own
commands. Anything else is ``AccessDeniedException``; the admin key may not poll.

- Every call records the instance as seen, with the ``x-amz-codedeploy-agent-version`` header.
- PollHostCommand is a long poll (``poll_timeout_seconds``): it answers at once when a command is
  waiting and ``{}`` when none came in time. The instance counts as seen when the poll starts,
  while it is held (heartbeat) and when it returns; the engine's dead-agent rule relies on it.
- PutHostCommandAcknowledgement reads ``{"IsCommandNoop": bool}`` and answers the CommandStatus
  (``Failed`` for a command the engine gave up on, which the agent then skips).
- PutHostCommandComplete maps the agent's ``{"error_code", "script_name", "message", "log"}`` to
  the public diagnostics: codes 0–5 by name, 6 (outputs left open) to ScriptFailed and 7 (failed
  after an agent restart) to UnknownError, keeping the agent's message. Late and repeated
  completions are accepted and ignored.
- PostHostCommandUpdate carries hook output while it runs: ``Diagnostics`` =
  ``{"Format": "JSON", "Payload": "{\\"output\\": [\\"line\\", …]}"}`` (an OpenDeploy use of the
  official envelope); the lines are kept, bounded, on the command.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from opendeploy.api.app import AsyncHandler
from opendeploy.api.commands.agent_version import agent_version
from opendeploy.api.commands.signing import SpecSigner
from opendeploy.api.commands.spec import ClientError, envelope, spec_format, spec_payload
from opendeploy.api.context import Handler, RequestContext
from opendeploy.engine.dispatch import HostNotifier, Wakeup, long_poll_async
from opendeploy.service_errors import AccessDeniedError
from opendeploy.store import commands as cmd_store

log = logging.getLogger("opendeploy.commands")

#: The public LifecycleErrorCode for each of the official agent's error codes (§2.9).
ERROR_CODES: dict[int, str] = {
    0: "Success",
    1: "ScriptMissing",
    2: "ScriptNotExecutable",
    3: "ScriptTimedOut",
    4: "ScriptFailed",
    5: "UnknownError",
    6: "ScriptFailed",  # outputs left open: the script misbehaved
    7: "UnknownError",  # failed after an agent restart: the outcome is unknown
}

#: The public API documents ``logTail`` as "up to the last 4 KB".
LOG_TAIL_CHARS = 4096

_DEPLOYMENT_ARN = re.compile(r"deployment/(d-[A-Z0-9]{9})$")

#: Called on an instance's first poll ever (automatic deployments to new instances).
FirstPollHook = Callable[[str, datetime], None]


def _now() -> datetime:
    return datetime.now(UTC)


def _heartbeat_every(dead_after: float) -> float:
    """How often a held poll records its host as seen: well inside the dead-agent window."""
    return max(0.2, min(5.0, dead_after / 3))


def _touch_every(dead_after: float) -> float:
    """The shortest interval between two seen-updates of one instance (half a heartbeat)."""
    return _heartbeat_every(dead_after) / 2


def execution_id(region: str, account_id: str, deployment_id: str) -> str:
    """A DeploymentExecutionId in AWS's form (matches ``^[^/]+/[^/]+/[^/]+/.+$``)."""
    arn = f"arn:aws:codedeploy:{region}:{account_id}:deployment/{deployment_id}"
    return f"CodeDeploy/{region}/Prod/{arn}"


def deployment_of(execution: str) -> str:
    """The deployment id inside a DeploymentExecutionId; ClientException when there is none."""
    match = _DEPLOYMENT_ARN.search(execution)
    if match is None:
        raise ClientError(
            f"DeploymentExecutionId: {execution!r} does not end in deployment/d-XXXXXXXXX"
        )
    return match.group(1)


def _payload(envelope_: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON object inside a diagnostics envelope ({} when absent or not JSON)."""
    if not envelope_ or not envelope_.get("Payload"):
        return {}
    try:
        data = json.loads(envelope_["Payload"])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def public_diagnostics(status: str, envelope_: dict[str, Any] | None) -> dict[str, Any]:
    """The public ``LifecycleEvent.diagnostics`` for a completion's envelope."""
    data = _payload(envelope_)
    code = data.get("error_code")
    if isinstance(code, int) and not isinstance(code, bool) and code in ERROR_CODES:
        error_code = ERROR_CODES[code]
    elif status == cmd_store.SUCCEEDED and code is None:
        error_code = "Success"
    else:
        error_code = "UnknownError"
    message = data.get("message")
    if not isinstance(message, str) or not message:
        message = (
            "Succeeded"
            if status == cmd_store.SUCCEEDED
            else "The agent reported a failure with no details."
        )
    log_tail = data.get("log") if isinstance(data.get("log"), str) else ""
    script = data.get("script_name") if isinstance(data.get("script_name"), str) else ""
    return {
        "errorCode": error_code,
        "scriptName": script,
        "message": message,
        "logTail": str(log_tail)[-LOG_TAIL_CHARS:],
    }


@dataclass
class CommandApi:
    """The five operations, with what they wake: the worker, and nothing else."""

    notifier: HostNotifier
    wakeup: Wakeup
    signer: SpecSigner
    on_first_poll: FirstPollHook | None = None
    #: instance -> (monotonic time, agent version) of its last recorded sign of life.
    _touched: dict[str, tuple[float, str | None]] = field(default_factory=dict, repr=False)
    _touch_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def handlers(self) -> dict[str, Handler | AsyncHandler]:
        return {
            "PollHostCommand": self.poll_host_command,
            "GetDeploymentSpecification": self.get_deployment_specification,
            "PutHostCommandAcknowledgement": self.put_host_command_acknowledgement,
            "PutHostCommandComplete": self.put_host_command_complete,
            "PostHostCommandUpdate": self.post_host_command_update,
        }

    # --- identity ------------------------------------------------------------------------------

    def _instance(self, ctx: RequestContext) -> dict[str, Any]:
        """The caller's instance (as it was before this call), recorded as seen now."""
        commands = ctx.store.commands
        instance = commands.instance_for_key(ctx.principal)
        if instance is None:
            if commands.key_kind(ctx.principal) == "admin":
                raise AccessDeniedError(
                    f"Access key {ctx.principal} is an admin key and may not act as a host; "
                    "issue an instance key with POST /opendeploy/v1/instance-credentials."
                )
            raise AccessDeniedError(
                f"Access key {ctx.principal} belongs to no registered on-premises instance."
            )
        self._touch(ctx, instance["name"])
        return instance

    def _host(self, ctx: RequestContext, host_identifier: str) -> dict[str, Any]:
        instance = self._instance(ctx)
        own = {instance["iam_user_arn"], instance["iam_session_arn"]} - {None}
        if host_identifier not in own:
            raise AccessDeniedError(
                f"HostIdentifier {host_identifier!r} is not the identity of instance "
                f"{instance['name']}, which access key {ctx.principal} belongs to."
            )
        return instance

    def _command(self, ctx: RequestContext, command_id: str) -> dict[str, Any]:
        instance = self._instance(ctx)
        command = ctx.store.commands.get(command_id)
        if command is None:
            raise ClientError(f"HostCommandIdentifier {command_id!r} is not a known host command")
        if command["instance_name"] != instance["name"]:
            raise AccessDeniedError(
                f"Host command {command_id} does not belong to instance {instance['name']}."
            )
        return command

    def _touch(self, ctx: RequestContext, name: str) -> None:
        """Record the instance as seen, at most every ``touch_every`` s per instance and version.

        Every call counts as a sign of life, but writing it on every call made the seen-update
        the largest cost per host-event (a write transaction, serialized on SQLite); the engine
        only needs ``last_seen_at`` to within a fraction of ``agent_dead_after_seconds``.
        """
        version = agent_version.get()
        now = time.monotonic()
        every = _touch_every(ctx.settings.agent_dead_after_seconds)
        with self._touch_lock:
            last = self._touched.get(name)
            if last is not None and last[1] == version and now - last[0] < every:
                return
            self._touched[name] = (now, version)
        ctx.store.instances.touch(name, now=_now(), agent_version=version)

    # --- operations ----------------------------------------------------------------------------

    async def poll_host_command(
        self, ctx: RequestContext, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Held on the event loop (no thread per held poll); database work runs in threads."""
        host = params["HostIdentifier"]
        instance = await anyio.to_thread.run_sync(self._host, ctx, host)
        name = instance["name"]
        if instance["last_seen_at"] is None and self.on_first_poll is not None:
            try:
                await anyio.to_thread.run_sync(self.on_first_poll, name, _now())
            except Exception:  # a failed automatic deployment must not break polling
                log.exception("automatic deployment to new instance failed instance=%s", name)
        settings = ctx.settings
        found = await long_poll_async(
            self.notifier,
            name,
            timeout=settings.poll_timeout_seconds,
            claim=lambda: ctx.store.commands.claim_next(name, now=_now()),
            heartbeat=lambda: self._touch(ctx, name),
            heartbeat_every=_heartbeat_every(settings.agent_dead_after_seconds),
        )
        await anyio.to_thread.run_sync(self._touch, ctx, name)
        if not isinstance(found, dict):
            return {}
        return {
            "HostCommand": {
                "HostCommandIdentifier": found["command_id"],
                "HostIdentifier": host,
                "DeploymentExecutionId": execution_id(
                    settings.region, settings.account_id, found["deployment_id"]
                ),
                "CommandName": found["lifecycle_event"],
                "Nonce": int(found["nonce"]),
            }
        }

    def get_deployment_specification(
        self, ctx: RequestContext, params: dict[str, Any]
    ) -> dict[str, Any]:
        instance = self._host(ctx, params["HostIdentifier"])
        deployment_id = deployment_of(params["DeploymentExecutionId"])
        deployment = ctx.store.deployments.get(deployment_id)
        targets = ctx.store.deployments.get_targets(deployment_id, [instance["name"]])
        if deployment is None or targets[0] is None:
            raise AccessDeniedError(
                f"Instance {instance['name']} is not a target of deployment {deployment_id}."
            )
        fmt = spec_format(agent_version.get())
        return {
            "DeploymentSystem": "CodeDeploy",
            "DeploymentSpecification": {
                "GenericEnvelope": envelope(spec_payload(deployment), fmt, self.signer)
            },
        }

    def put_host_command_acknowledgement(
        self, ctx: RequestContext, params: dict[str, Any]
    ) -> dict[str, Any]:
        command = self._command(ctx, params["HostCommandIdentifier"])
        noop = _payload(params.get("Diagnostics")).get("IsCommandNoop") is True
        status = ctx.store.commands.acknowledge(command["command_id"], now=_now(), noop=noop)
        self.wakeup.set()
        return {"CommandStatus": status}

    def put_host_command_complete(
        self, ctx: RequestContext, params: dict[str, Any]
    ) -> dict[str, Any]:
        command = self._command(ctx, params["HostCommandIdentifier"])
        status = params["CommandStatus"]
        if status not in (cmd_store.SUCCEEDED, cmd_store.FAILED):
            raise ClientError(f"CommandStatus: {status!r} must be Succeeded or Failed")
        accepted = ctx.store.commands.complete(
            command["command_id"],
            now=_now(),
            result=status,
            diagnostics=public_diagnostics(status, params.get("Diagnostics")),
        )
        if accepted:
            self.wakeup.set()
        return {}

    def post_host_command_update(
        self, ctx: RequestContext, params: dict[str, Any]
    ) -> dict[str, Any]:
        command = self._command(ctx, params["HostCommandIdentifier"])
        lines = _payload(params.get("Diagnostics")).get("output")
        text = ""
        if isinstance(lines, list):
            # Our agent sends {"stream": "stdout"|"stderr", "line": "…"} objects; plain strings
            # are accepted too (other clients of this OpenDeploy extension).
            text = "".join(f"{line}\n" for line in map(_output_line, lines) if line is not None)
        elif isinstance(lines, str):
            text = lines if lines.endswith("\n") else lines + "\n"
        status = ctx.store.commands.append_output(command["command_id"], text)
        if status is None or status == cmd_store.CLOSED:
            status = command["result"] or cmd_store.FAILED
        return {"CommandStatus": status}


def _output_line(entry: object) -> str | None:
    """One streamed output line from a PostHostCommandUpdate payload entry, if it is one."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("line"), str):
        return str(entry["line"])
    return None
