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
  official envelope); the lines are kept, bounded, on the command. A payload's ``seq`` (our
  agent numbers its batches) makes a batch sent again after a lost answer count once.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from opendeploy.api.app import AsyncHandler, client_gone
from opendeploy.api.commands.agent_version import agent_version
from opendeploy.api.commands.received import parse as parse_received
from opendeploy.api.commands.received import received_commands
from opendeploy.api.commands.signing import SpecSigner
from opendeploy.api.commands.spec import ClientError, envelope, spec_format, spec_payload
from opendeploy.api.context import Handler, RequestContext
from opendeploy.blocking import run_blocking
from opendeploy.engine.dispatch import (
    SWEEP_SECONDS,
    HostNotifier,
    Sweeper,
    Wakeup,
    count_in,
    count_out,
    long_poll_async,
)
from opendeploy.service_errors import AccessDeniedError
from opendeploy.store import commands as cmd_store

if TYPE_CHECKING:
    from opendeploy.settings import ServerSettings
    from opendeploy.store.database import Store

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


def _touch_every(dead_after: float) -> float:
    """How often one instance's sign of life is written: well inside the dead-agent window.

    With :func:`_sweep_every` added (a recorded sign of life waits for the next sweep), a live
    agent's ``last_seen_at`` is never more than about half of ``dead_after`` old (the engine of
    this process counts a poll held here as "seen now" in any case). Each held poll is written
    once per interval: with ten thousand agents, every 2.5 s was 4,000 row updates a second."""
    return max(0.1, min(5.0, dead_after / 3))


def _sweep_every(dead_after: float) -> float:
    """How often the process sweeps: batched seen-updates, commands made by other replicas."""
    return max(0.1, min(SWEEP_SECONDS, dead_after / 6))


#: Access keys whose identity is kept in memory (far above any fleet this server is sized for).
IDENTITY_CACHE_SIZE = 100_000

#: How soon after an acknowledgement the engine records the event as in progress (unless the
#: command's completion, or anything else, wakes it first). A hook shorter than this costs one
#: engine pass instead of two, and the completion is not queued behind the acknowledgement's pass.
ACK_PASS_DELAY_SECONDS = 0.05

#: Commands whose newest output batch number is remembered (enough for every running hook).
UPDATE_SEQ_CACHE_SIZE = 100_000

#: Signed deployment specifications kept in memory, per deployment and envelope format.
SPEC_CACHE_SIZE = 64


@dataclass(frozen=True)
class _Identity:
    """What an instance key stands for; fixed for the key's life (its principal is the ARN of
    one registration, and deregistering revokes the key in SigV4's ``lookup_secret``)."""

    name: str
    host_identifiers: frozenset[str]


class _SeenLog:
    """The agents' signs of life, written in batches by the process's sweep.

    Every call counts as a sign of life, but writing it on every call made the seen-update the
    largest cost per host-event (a write transaction, serialized on SQLite), and re-writing it
    for every held poll the largest idle cost. The engine only needs ``last_seen_at`` to within a
    fraction of ``agent_dead_after_seconds``: a host's time is queued at most every ``every`` s
    (from its calls, or from the sweep while it holds a poll) and the queue is written in one
    transaction per sweep. A host first seen by this process, or with a new agent version, is
    written at once (the first-poll hook and the version on the instance rely on that).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: name -> (monotonic time it was last queued or written, agent version then)
        self._noted: dict[str, tuple[float, str | None]] = {}
        self._queued: dict[str, datetime] = {}
        #: name -> when this process last heard from it (every call; for this process's engine,
        #: which must not take a lagging batched write for a silent agent).
        self._heard: dict[str, datetime] = {}
        #: name -> number of its calls being handled right now.
        self._busy: dict[str, int] = {}

    def call_started(self, name: str) -> None:
        """A call of ``name`` is being handled: it counts as heard until it ends (a call may
        wait for the database a long while under a fleet's load)."""
        with self._lock:
            count_in(self._busy, name)

    def call_ended(self, name: str) -> None:
        heard = _now()
        with self._lock:
            self._heard[name] = heard
            count_out(self._busy, name)

    def heard(self) -> dict[str, datetime]:
        """When this process last heard from each agent (now, for those with a call being
        handled); a copy."""
        now = _now()
        with self._lock:
            heard = dict(self._heard)
            for name in self._busy:
                heard[name] = now
        return heard

    def record(self, name: str, version: str | None, *, every: float) -> bool:
        """Note a call from ``name``; True when the caller must write it now (with the version)."""
        mono = time.monotonic()
        heard = _now()
        with self._lock:
            self._heard[name] = heard
            last = self._noted.get(name)
            if last is None or last[1] != version:
                self._noted[name] = (mono, version)
                self._queued.pop(name, None)
                return True
            if mono - last[0] >= every:
                self._noted[name] = (mono, version)
                self._queued[name] = _now()
            return False

    def take(self, holding: list[str], *, every: float) -> dict[str, datetime]:
        """Queue the hosts holding a poll that are due, and hand out the whole queue."""
        mono, now = time.monotonic(), _now()
        with self._lock:
            for name in holding:
                self._heard[name] = now
                last = self._noted.get(name)
                if last is not None and mono - last[0] >= every:
                    self._noted[name] = (mono, last[1])
                    self._queued[name] = now
            queued, self._queued = self._queued, {}
        return queued


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
    """The five operations, with what they wake: the worker, and nothing else.

    Per process, the first call starts a :class:`Sweeper` (stopped when the notifier closes) that
    writes the batched signs of life and wakes held polls whose host got a command from another
    replica."""

    notifier: HostNotifier
    wakeup: Wakeup
    signer: SpecSigner
    on_first_poll: FirstPollHook | None = None
    #: Called from the sweep when an instance was deregistered (here or by another replica):
    #: cached SigV4 secrets must be forgotten so that its key stops working.
    on_deregistration: Callable[[], None] | None = None
    _identities: dict[str, _Identity] = field(default_factory=dict, repr=False)
    _seen: _SeenLog = field(default_factory=_SeenLog, repr=False)
    _specs: OrderedDict[tuple[str, str], dict[str, str]] = field(
        default_factory=OrderedDict, repr=False
    )
    _targets: OrderedDict[str, frozenset[str]] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _calling: threading.local = field(default_factory=threading.local, repr=False)
    _sweeper: Sweeper | None = field(default=None, repr=False)
    _deregistered_at: datetime | None = field(default=None, repr=False)
    #: The hosts that polled this process since it started (see :meth:`polled`).
    _polled: set[str] = field(default_factory=set, repr=False)
    #: Instance name -> the last command this process handed to it, until the agent's next
    #: poll shows whether it arrived (see :meth:`_release_lost_deliveries`).
    _handed_out: dict[str, str] = field(default_factory=dict, repr=False)
    #: Instances whose deliveries this process has checked once (after a start).
    _checked: set[str] = field(default_factory=set, repr=False)
    #: Command id -> the ``seq`` of its newest output batch kept (our agent numbers them).
    _update_seqs: OrderedDict[str, int] = field(default_factory=OrderedDict, repr=False)

    def heard(self) -> dict[str, datetime]:
        """When this process last heard from each agent (for the engine's dead-agent rule)."""
        return self._seen.heard()

    def polled(self) -> frozenset[str]:
        """The hosts that polled this process since it started (the engine's restart grace)."""
        with self._lock:
            return frozenset(self._polled)

    def handlers(self) -> dict[str, Handler | AsyncHandler]:
        return {
            "PollHostCommand": self.poll_host_command,
            "GetDeploymentSpecification": self._tracked(self.get_deployment_specification),
            "PutHostCommandAcknowledgement": self.put_host_command_acknowledgement,
            "PutHostCommandComplete": self.put_host_command_complete,
            "PostHostCommandUpdate": self._tracked(self.post_host_command_update),
        }

    def _tracked(self, operation: Handler) -> Handler:
        """``operation`` with its caller counted as heard for as long as it is handled (the
        operation names the caller through :meth:`_caller`, in the same thread)."""

        def call(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
            try:
                return operation(ctx, params)
            finally:
                name = self._calling.__dict__.pop("name", None)
                if name is not None:
                    self._seen.call_ended(name)

        return call

    def _caller(self, ctx: RequestContext, host_identifier: str | None = None) -> _Identity:
        """The calling instance of a synchronous operation (see :meth:`_tracked`)."""
        if host_identifier is None:
            identity, _ = self._instance(ctx)
        else:
            identity, _ = self._host(ctx, host_identifier)
        self._calling.name = identity.name
        self._seen.call_started(identity.name)
        return identity

    async def _caller_async(self, ctx: RequestContext) -> tuple[_Identity, bool]:
        """The calling instance of an operation run on the event loop, and whether this is its
        first call ever: from memory when its key is known (the usual case; no thread, and no
        database unless its sign of life is due a write), otherwise looked up in a thread."""
        known = self._identities.get(ctx.principal)
        if known is None:
            return await run_blocking(self._instance, ctx)
        if self._seen_needs_write(ctx, known.name):
            await run_blocking(self._write_seen, ctx, known.name)
        return known, False

    # --- the process's sweep -------------------------------------------------------------------

    def _start_sweeper(self, store: Store, settings: ServerSettings) -> None:
        """Start the sweep on first use (the store and settings come with the first request)."""
        if self._sweeper is not None or self.notifier.closed:
            return
        with self._lock:
            if self._sweeper is not None:
                return
            dead_after = settings.agent_dead_after_seconds
            self._sweeper = Sweeper(
                lambda: self.sweep(store, dead_after),
                _sweep_every(dead_after),
                name="command-api-sweep",
            )
            self._sweeper.start()
        # Stopped (after one last run that writes what is queued) before the store closes.
        self.notifier.on_close(self._sweeper.stop)

    def sweep(self, store: Store, dead_after: float) -> None:
        """Write the queued signs of life; wake held polls whose host has a command waiting.

        The polls held here are in the seen-update too: a live agent always holds a poll, and
        must never look dead however long it holds it. Commands created by this process's
        engine woke their polls already; the query finds those of other replicas (and
        deliveries that went stale), for all hosts in one read."""
        if self.on_deregistration is not None:
            newest = store.instances.last_deregistration()
            if newest != self._deregistered_at:
                self._deregistered_at = newest
                self.on_deregistration()
        holding = self.notifier.waiting()
        seen = self._seen.take(holding, every=_touch_every(dead_after))
        if seen:
            store.instances.touch_many(seen)
        if holding:
            ready = store.commands.deliverable_among(holding, now=_now())
            if ready:
                self.notifier.notify(ready)

    # --- identity ------------------------------------------------------------------------------

    def _instance(self, ctx: RequestContext) -> tuple[_Identity, bool]:
        """The caller's instance, recorded as seen; and whether this is its first call ever."""
        identity = self._identities.get(ctx.principal)
        first = False
        if identity is None:
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
            identity = _Identity(
                instance["name"],
                frozenset({instance["iam_user_arn"], instance["iam_session_arn"]} - {None}),
            )
            first = instance["last_seen_at"] is None
            with self._lock:
                if len(self._identities) >= IDENTITY_CACHE_SIZE:
                    self._identities.pop(next(iter(self._identities)))
                self._identities[ctx.principal] = identity
        self._start_sweeper(ctx.store, ctx.settings)
        if self._seen_needs_write(ctx, identity.name):
            self._write_seen(ctx, identity.name)
        return identity, first

    def _host(self, ctx: RequestContext, host_identifier: str) -> tuple[_Identity, bool]:
        identity, first = self._instance(ctx)
        self._check_host(ctx, identity, host_identifier)
        return identity, first

    @staticmethod
    def _check_host(ctx: RequestContext, identity: _Identity, host_identifier: str) -> None:
        if host_identifier not in identity.host_identifiers:
            raise AccessDeniedError(
                f"HostIdentifier {host_identifier!r} is not the identity of instance "
                f"{identity.name}, which access key {ctx.principal} belongs to."
            )

    def _seen_needs_write(self, ctx: RequestContext, name: str) -> bool:
        """Note a sign of life; True when it must be written now (see :class:`_SeenLog`)."""
        every = _touch_every(ctx.settings.agent_dead_after_seconds)
        return self._seen.record(name, agent_version.get(), every=every)

    @staticmethod
    def _write_seen(ctx: RequestContext, name: str) -> None:
        ctx.store.instances.touch(name, now=_now(), agent_version=agent_version.get())

    @staticmethod
    def _refuse(ctx: RequestContext, command_id: str, identity: _Identity) -> NoReturn:
        """The error for a command that is unknown or not the caller's (the rare path)."""
        command = ctx.store.commands.get(command_id)
        if command is None:
            raise ClientError(f"HostCommandIdentifier {command_id!r} is not a known host command")
        raise AccessDeniedError(
            f"Host command {command_id} does not belong to instance {identity.name}."
        )

    # --- operations ----------------------------------------------------------------------------

    async def poll_host_command(
        self, ctx: RequestContext, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Held on the event loop (no thread per held poll); its reads run in threads, and its
        claim joins the group commit (SQLite) without a thread of its own."""
        host = params["HostIdentifier"]
        identity, first = await self._caller_async(ctx)
        self._check_host(ctx, identity, host)
        name = identity.name
        if name not in self._polled:
            with self._lock:
                self._polled.add(name)
        if first and self.on_first_poll is not None:
            try:
                await run_blocking(self.on_first_poll, name, _now())
            except Exception:  # a failed automatic deployment must not break polling
                log.exception("automatic deployment to new instance failed instance=%s", name)
        settings = ctx.settings
        commands = ctx.store.commands
        received = received_commands.get()
        if received is not None:
            await self._release_lost_deliveries(commands, name, parse_received(received))

        async def claim(woken: bool) -> dict[str, Any] | None:
            # Not woken for a command: a read first (in a thread), as claim_next does.
            if not woken and not await run_blocking(_has_deliverable, commands, name):
                return None
            return await commands.claim_expected_async(name, now=_now())

        found = await long_poll_async(
            self.notifier,
            name,
            timeout=settings.poll_timeout_seconds,
            claim=claim,
            gone=client_gone.get(),
            drained=lambda found: isinstance(found, dict) and not found["others_deliverable"],
        )
        # Seen as the poll returns too (the sweep covered it while it was held).
        if self._seen_needs_write(ctx, name):
            await run_blocking(self._write_seen, ctx, name)
        if not isinstance(found, dict):
            return {}
        if received is not None:
            with self._lock:
                self._handed_out[name] = str(found["command_id"])
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

    async def _release_lost_deliveries(
        self, commands: cmd_store.Commands, name: str, received: frozenset[str]
    ) -> None:
        """Hand out again, at once, the commands this agent shows it never received.

        The agent lists the commands it received (:mod:`opendeploy.api.commands.received`). The
        last command this process handed to it must be among them by its next poll; if not,
        the answer was lost on the way. After a start the process knows nothing it handed out,
        so an agent's first poll here is checked against the database once (the previous
        process may have recorded a delivery and died before the answer left). Without the
        list (the official agent), a lost delivery waits for ``REDELIVER_AFTER``."""
        with self._lock:
            last = self._handed_out.pop(name, None)
            first = name not in self._checked
            if first:
                self._checked.add(name)
        lost = [] if last is None or last in received else [last]
        if first:
            delivered = await run_blocking(commands.delivered_unacknowledged, name)
            lost += [c for c in delivered if c not in received and c not in lost]
        if not lost:
            return
        released: int = await run_blocking(commands.release, name, lost)
        if released:
            log.info(
                "redelivering host commands instance=%s commands=%s: the agent's poll shows it"
                " never received them",
                name,
                ",".join(lost),
            )

    def get_deployment_specification(
        self, ctx: RequestContext, params: dict[str, Any]
    ) -> dict[str, Any]:
        identity = self._caller(ctx, params["HostIdentifier"])
        name = identity.name
        deployment_id = deployment_of(params["DeploymentExecutionId"])
        fmt = spec_format(agent_version.get())
        # A deployment's specification never changes: it is built and signed once per format.
        key = (deployment_id, fmt)
        with self._lock:
            cached = self._specs.get(key)
        if cached is not None and name in self._targets_of(ctx, deployment_id):
            generic = cached
        else:
            source = (
                None if cached is not None else ctx.store.commands.spec_source(deployment_id, name)
            )
            if source is None:
                raise AccessDeniedError(
                    f"Instance {name} is not a target of deployment {deployment_id}."
                )
            generic = envelope(spec_payload(source), fmt, self.signer)
            with self._lock:
                self._specs[key] = generic
                while len(self._specs) > SPEC_CACHE_SIZE:
                    self._specs.popitem(last=False)
        return {
            "DeploymentSystem": "CodeDeploy",
            "DeploymentSpecification": {"GenericEnvelope": dict(generic)},
        }

    def _targets_of(self, ctx: RequestContext, deployment_id: str) -> frozenset[str]:
        """The deployment's target names (fixed once it is created), read once and kept."""
        with self._lock:
            known = self._targets.get(deployment_id)
        if known is None:
            known = frozenset(ctx.store.commands.target_names(deployment_id))
            with self._lock:
                self._targets[deployment_id] = known
                while len(self._targets) > SPEC_CACHE_SIZE:
                    self._targets.popitem(last=False)
        return known

    # Acknowledgements and completions run on the event loop: a fleet sends one of each per
    # lifecycle event, and a thread hand-off (and a wait for the write) per call was a large
    # part of what each cost. Their writes join the group commit without a thread of their own.

    async def put_host_command_acknowledgement(
        self, ctx: RequestContext, params: dict[str, Any]
    ) -> dict[str, Any]:
        identity, _ = await self._caller_async(ctx)
        self._seen.call_started(identity.name)
        try:
            command_id = params["HostCommandIdentifier"]
            noop = _payload(params.get("Diagnostics")).get("IsCommandNoop") is True
            status = await ctx.store.commands.acknowledge_async(
                command_id, now=_now(), noop=noop, owner=identity.name
            )
            if status is None:
                await run_blocking(self._refuse, ctx, command_id, identity)
        finally:
            self._seen.call_ended(identity.name)
        # Soon, not now: see Wakeup.set_soon (the event's start time is the acknowledgement's).
        self.wakeup.set_soon(ACK_PASS_DELAY_SECONDS)
        return {"CommandStatus": status}

    async def put_host_command_complete(
        self, ctx: RequestContext, params: dict[str, Any]
    ) -> dict[str, Any]:
        identity, _ = await self._caller_async(ctx)
        self._seen.call_started(identity.name)
        try:
            command_id = params["HostCommandIdentifier"]
            status = params["CommandStatus"]
            if status not in (cmd_store.SUCCEEDED, cmd_store.FAILED):
                await run_blocking(self._refuse_bad_status, ctx, command_id, identity, status)
            accepted = await ctx.store.commands.complete_async(
                command_id,
                now=_now(),
                result=status,
                diagnostics=public_diagnostics(status, params.get("Diagnostics")),
                owner=identity.name,
            )
            if accepted is None:
                await run_blocking(self._refuse, ctx, command_id, identity)
        finally:
            self._seen.call_ended(identity.name)
        if accepted:
            self.wakeup.set()
        return {}

    def _update_seen(self, command_id: str, seq: int) -> bool:
        """Whether output batch ``seq`` of the command was kept already (see
        :meth:`post_host_command_update`; remembered in this process only)."""
        with self._lock:
            last = self._update_seqs.get(command_id)
        return last is not None and seq <= last

    @classmethod
    def _refuse_bad_status(
        cls, ctx: RequestContext, command_id: str, identity: _Identity, status: object
    ) -> NoReturn:
        command = ctx.store.commands.get(command_id)
        if command is None or command["instance_name"] != identity.name:
            cls._refuse(ctx, command_id, identity)
        raise ClientError(f"CommandStatus: {status!r} must be Succeeded or Failed")

    def post_host_command_update(
        self, ctx: RequestContext, params: dict[str, Any]
    ) -> dict[str, Any]:
        identity = self._caller(ctx)
        command_id = params["HostCommandIdentifier"]
        data = _payload(params.get("Diagnostics"))
        seq = data.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            seq = None
        elif self._update_seen(command_id, seq):
            # A batch sent again (its answer was lost): kept once, answered as before.
            data = {}
        lines = data.get("output")
        text = ""
        if isinstance(lines, list):
            # Our agent sends {"stream": "stdout"|"stderr", "line": "…"} objects; plain strings
            # are accepted too (other clients of this OpenDeploy extension).
            text = "".join(f"{line}\n" for line in map(_output_line, lines) if line is not None)
        elif isinstance(lines, str):
            text = lines if lines.endswith("\n") else lines + "\n"
        status = ctx.store.commands.append_output(command_id, text, owner=identity.name)
        if status is None:
            self._refuse(ctx, command_id, identity)
        if seq is not None and text:
            with self._lock:
                self._update_seqs[command_id] = seq
                self._update_seqs.move_to_end(command_id)
                while len(self._update_seqs) > UPDATE_SEQ_CACHE_SIZE:
                    self._update_seqs.popitem(last=False)
        if text:
            # Output shows the hook running: have the event shown in progress with it, now
            # rather than when the acknowledgement's deferred pass comes.
            self.wakeup.set()
        return {"CommandStatus": status}


def _has_deliverable(commands: cmd_store.Commands, name: str) -> bool:
    return commands.has_deliverable(name, now=_now())


def _output_line(entry: object) -> str | None:
    """One streamed output line from a PostHostCommandUpdate payload entry, if it is one.

    A line of a known stream keeps its marker as scripts.log and the lifecycle events' logTail
    write it (``[stdout]healthy``, ``[stderr]HTTP 503``), so every reader can tell them apart.
    """
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("line"), str):
        stream = entry.get("stream")
        if stream in ("stdout", "stderr"):
            return f"[{stream}]{entry['line']}"
        return str(entry["line"])
    return None
