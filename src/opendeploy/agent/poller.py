"""The server-driven agent: poll the Command API for host commands and carry them out.

One loop asks ``PollHostCommand`` for work (the server holds the request until a command is
ready, so a command reaches an idle host in milliseconds) and hands each command to a worker
thread, so polling goes on while a hook runs. A worker follows the official agent's flow:

1. ``GetDeploymentSpecification`` (``DeploymentSystem`` must be ``CodeDeploy``), once per
   deployment (see below);
2. ``PutHostCommandAcknowledgement`` with ``{"IsCommandNoop": …}``; an answer of ``Succeeded``
   or ``Failed`` means "skip it" (after ``Failed`` a no-op is still completed as Succeeded);
3. write ``<root_dir>/ongoing-deployment/<deployment-id>`` (content: the command id), run the
   event with :func:`~opendeploy.agent.executor.execute_event`, streaming hook output through
   ``PostHostCommandUpdate`` (batched, from a background thread);
4. ``PutHostCommandComplete`` with the official diagnostics JSON, then remove the tracking file.

Commands of different deployment groups run concurrently (up to 16, as the official pool);
commands of one group run one after the other, because they share the group's on-disk records.

Where we differ from the official agent, on purpose:

- crash recovery reports *every* tracking file younger than 24 h (we run deployments of several
  groups concurrently), not only the newest, and keeps a file until the server took the report;
- the deployment specification is asked for once per deployment, not for each of its seven
  commands: a deployment's specification never changes, and the call was a quarter of the
  agent's requests (a specification that fails to parse is asked for again next time);
- after a poll that took at least ``wait_between_runs`` (a long poll) the next poll goes out at
  once; only a poll answered faster waits out the rest of ``wait_between_runs``;
- errors reaching the server back off exponentially with jitter from 0.5 s to 30 s (official:
  up to 90 s), and every such log line names the endpoint (a restarted server is found within
  about twice the time it was away);
- every call of a command's flow is retried when the server could not be reached or its
  answer was lost (the server answers a repeated call as it answered the first: an
  acknowledgement of a command already acknowledged is ``InProgress`` again, a repeated
  completion is ignored), for up to :data:`CALL_RETRY_SECONDS`; a lost answer costs a retry,
  not the command. A command delivered again while it runs here is not run twice;
- every PollHostCommand lists the commands received lately (``x-opendeploy-received-commands``),
  so that the server hands out again at once a command whose poll answer was lost;
- the on-premises credentials are re-read when their file changes, without a restart (#354).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError
from botocore.exceptions import ClientError as BotoClientError

from opendeploy.agent.config import (
    AgentConfig,
    OnPremisesConfig,
    Reloadable,
    SharedCredentials,
    load_on_premises_config,
    load_shared_credentials,
)
from opendeploy.agent.deployment_root import DeploymentRoot
from opendeploy.agent.envelope import open_envelope
from opendeploy.agent.executor import EventResult, EventStatus, deployment_root, execute_event
from opendeploy.agent.executor import is_noop as event_is_noop
from opendeploy.agent.spec import DeploymentSpec, parse_deployment_spec
from opendeploy.agent.updates import MAX_PAYLOAD_CHARS, OutputStreamer, fit_payload
from opendeploy.clients import RECEIVED_COMMANDS_HEADER, command_client
from opendeploy.clients import agent_version as default_agent_version
from opendeploy.domain.lifecycle import AGENT_BUILTIN_EVENTS, HOOK_EVENTS
from opendeploy.domain.status import LifecycleErrorCode
from opendeploy.errors import AgentError, OpenDeployError

__all__ = [
    "FAILED_AFTER_RESTART_MESSAGE",
    "SUPPORTED_COMMANDS",
    "Backoff",
    "HostConnection",
    "Poller",
    "recovery_diagnostics",
]

log = logging.getLogger("opendeploy.agent.poller")

#: The official message of error code 7.
FAILED_AFTER_RESTART_MESSAGE = "Failed: Failing in-progress lifecycle event after an agent restart."
#: Command names the agent carries out (anything else: ``Unsupported command type``).
SUPPORTED_COMMANDS = frozenset(str(e) for e in (*AGENT_BUILTIN_EVENTS, *HOOK_EVENTS))
#: Tracking files older than this are stale and not reported after a restart (official: 24 h).
RECOVERY_MAX_AGE_SECONDS = 86400
#: How many deployments' specifications are remembered (a host runs few at once).
SPEC_CACHE_SIZE = 32
#: The official agent's thread pool size.
MAX_WORKERS = 16
#: The poll loop's backoff while the server cannot be reached (see Backoff).
POLL_RETRY_BASE = 0.5
POLL_RETRY_CAP = 30.0
#: How long a command's calls (specification, acknowledgement, completion) are retried while
#: the server cannot be reached or loses answers (a server restart takes seconds).
CALL_RETRY_SECONDS = 300.0
#: The backoff of those retries: short, so that a restarted server is found within a second or
#: two (the delay is drawn between half and all of base × 2^n, up to the cap).
CALL_RETRY_BASE = 0.25
CALL_RETRY_CAP = 2.0
#: How many received command ids each poll lists (the server checks the last one it sent).
RECEIVED_IDS = 32
#: After a command completes, the server hands the next one to the outstanding poll at once;
#: a stopping agent waits this long for it rather than leave it to the server's start timeout.
HANDOFF_GRACE_SECONDS = 2.0

_T = TypeVar("_T")
_SKIP_STATUSES = ("Succeeded", "Failed")
# Network and service errors: reaching the server failed, back off and try again.
_CALL_ERRORS = (BotoCoreError, BotoClientError)


def recovery_diagnostics() -> dict[str, Any]:
    """The diagnostics an agent sends for a command a crash interrupted (error code 7)."""
    return {
        "error_code": 7,
        "script_name": "",
        "message": FAILED_AFTER_RESTART_MESSAGE,
        "log": "",
    }


def _envelope(payload: str) -> dict[str, str]:
    return {"Format": "JSON", "Payload": payload}


def _deregistered(exc: BaseException) -> bool:
    """Whether the server refused the call because this host's instance was deregistered."""
    if not isinstance(exc, BotoClientError):
        return False
    error = exc.response.get("Error", {})
    return error.get("Code") == "UnrecognizedClientException" and "deregistered" in str(
        error.get("Message", "")
    )


def _retryable(exc: BaseException) -> bool:
    """Whether a failed call may succeed if repeated: the server was not reached, the answer
    was lost, or the server failed or throttled (not a refusal such as AccessDenied)."""
    if isinstance(exc, BotoClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code", "")
        return status >= 500 or status == 429 or code in ("ThrottlingException", "Throttling")
    return isinstance(exc, BotoCoreError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BotoClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')} - {error.get('Message', '')}"
    return f"{type(exc).__name__} - {exc}"


class Backoff:
    """Exponential backoff with jitter: ``base``, 2×``base``, … up to ``cap`` seconds.

    Each delay is drawn between half and all of the nominal value, so many agents that lost the
    server at the same moment do not come back in step.
    """

    def __init__(
        self, base: float = 1.0, cap: float = 30.0, rng: Callable[[], float] = random.random
    ) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng

    def next(self) -> float:
        """The delay after one more consecutive failure."""
        self.failures += 1
        nominal = min(self.cap, self.base * 2.0 ** min(self.failures - 1, 30))
        return nominal / 2 + self._rng() * nominal / 2

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class _Identity:
    endpoint: str
    region: str
    host_identifier: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None


class HostConnection:
    """This host's identity and its Command API client, rebuilt when the credentials change.

    The identity comes from the on-premises file (``iam_user_arn`` with static keys, or
    ``iam_session_arn`` with a shared-credentials file); both files are re-read when they
    change, so rotated keys are used from the next call on.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        agent_version: str,
        on_client: Callable[[Any], None] | None = None,
    ) -> None:
        self._config = config
        self._agent_version = agent_version
        self._on_client = on_client
        self._on_premises: Reloadable[OnPremisesConfig] = Reloadable(
            config.on_premises_config_file, load_on_premises_config
        )
        self._shared: Reloadable[SharedCredentials] | None = None
        self._lock = threading.Lock()
        self._identity: _Identity | None = None
        self._client: Any = None

    def _endpoint(self, region: str) -> str:
        if self._config.deploy_control_endpoint:
            return self._config.deploy_control_endpoint
        return f"https://codedeploy-commands.{region}.amazonaws.com"

    def _current_identity(self) -> _Identity:
        on_premises = self._on_premises.get()
        if on_premises.iam_session_arn is not None:
            assert on_premises.aws_credentials_file is not None
            path = on_premises.aws_credentials_file
            if self._shared is None or self._shared.path != path:
                self._shared = Reloadable(path, load_shared_credentials)
            shared = self._shared.get()
            key_id, secret, token = (
                shared.aws_access_key_id,
                shared.aws_secret_access_key,
                shared.aws_session_token,
            )
        else:
            assert on_premises.aws_access_key_id and on_premises.aws_secret_access_key
            key_id, secret, token = (
                on_premises.aws_access_key_id,
                on_premises.aws_secret_access_key,
                None,
            )
        return _Identity(
            endpoint=self._endpoint(on_premises.region),
            region=on_premises.region,
            host_identifier=on_premises.host_identifier,
            access_key_id=key_id,
            secret_access_key=secret,
            session_token=token,
        )

    @property
    def endpoint(self) -> str:
        """The Command API endpoint (best effort before the first successful load)."""
        if self._identity is not None:
            return self._identity.endpoint
        return self._config.deploy_control_endpoint or "(the AWS CodeDeploy command endpoint)"

    def get(self) -> tuple[Any, str]:
        """``(client, host identifier)``; raises AgentConfigError if the files are invalid."""
        with self._lock:
            identity = self._current_identity()
            if identity != self._identity or self._client is None:
                if self._identity is not None:
                    log.info(
                        "The on-premises credentials changed (%s); using the new ones",
                        self._config.on_premises_config_file,
                    )
                self._client = command_client(
                    endpoint_url=identity.endpoint,
                    access_key_id=identity.access_key_id,
                    secret_access_key=identity.secret_access_key,
                    session_token=identity.session_token,
                    region=identity.region,
                    agent_version=self._agent_version,
                    proxy=self._config.proxy_uri,
                    read_timeout=self._config.http_read_timeout,
                )
                self._identity = identity
                if self._on_client is not None:
                    self._on_client(self._client)
            return self._client, identity.host_identifier


class _Turns:
    """Commands of one deployment run in the order they were received.

    The server sends a host one lifecycle event at a time, but one that sends several at once
    (a test double, a server replaying after a restart) must not have them reordered by the
    worker pool or by the network calls each makes before it takes its group's lock. Every
    command takes a ticket when it is received, waits for its turn before anything else, and
    hands the turn on when it ends, however it ends.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._issued: dict[str, int] = {}
        self._serving: dict[str, int] = {}

    def ticket(self, key: str) -> int:
        with self._cond:
            ticket = self._issued.get(key, 0)
            self._issued[key] = ticket + 1
            return ticket

    def wait(self, key: str, ticket: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._serving.get(key, 0) == ticket)

    def done(self, key: str, ticket: int) -> None:
        with self._cond:
            self._serving[key] = ticket + 1
            if self._serving[key] == self._issued.get(key):
                # Nothing more pending for this deployment: forget it (bounded memory).
                del self._serving[key], self._issued[key]
            self._cond.notify_all()


class Poller:
    """The agent's main loop and its command workers (see the module docstring).

    ``run()`` blocks until :meth:`request_stop`; it then stops polling, waits for the commands
    in flight (at most ``stop_timeout`` seconds) and returns. ``first_poll_sent`` is set once
    the first PollHostCommand request went out (what test helpers wait for).
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        agent_version: str | None = None,
        max_workers: int = MAX_WORKERS,
        backoff: Backoff | None = None,
        update_interval: float = 0.15,
    ) -> None:
        self.config = config
        self.root: DeploymentRoot = deployment_root(config)
        self.connection = HostConnection(
            config,
            agent_version=agent_version or default_agent_version(),
            on_client=self._watch_client,
        )
        self.backoff = backoff or Backoff(POLL_RETRY_BASE, POLL_RETRY_CAP)
        self.update_interval = update_interval
        self.first_poll_sent = threading.Event()
        self._stop = threading.Event()
        #: Why the agent stopped by itself (its instance was deregistered), else None.
        self.fatal: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="command")
        self._futures: set[Future[None]] = set()
        self._futures_lock = threading.Lock()
        self._group_locks: dict[str, threading.Lock] = {}
        self._turns = _Turns()
        self._group_locks_lock = threading.Lock()
        self._recovered = False
        # Set while no PollHostCommand is outstanding; see wait_for_commands.
        self._poll_idle = threading.Event()
        self._poll_idle.set()
        self._last_completion = float("-inf")
        # DeploymentExecutionId -> its specification, newest last (insertion order).
        self._specs: dict[str, DeploymentSpec] = {}
        self._specs_lock = threading.Lock()
        # The commands received lately (newest first; listed on every poll) and those being
        # carried out now (a repeated delivery of one of them is not run again).
        self._received: deque[str] = deque(maxlen=RECEIVED_IDS)
        self._in_flight: set[str] = set()
        self._received_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Stop polling; commands in flight go on (``run`` waits for them)."""
        self._stop.set()

    def busy(self) -> bool:
        """Whether a command is in flight."""
        with self._futures_lock:
            return any(not f.done() for f in self._futures)

    def run(self, *, stop_timeout: float | None = None) -> bool:
        """Poll until a stop is requested, then wait for the commands in flight.

        Returns True when every command finished, False when ``stop_timeout`` (default: the
        config's ``kill_agent_max_wait_time_seconds``) ran out first.
        """
        log.info(
            "Agent started: root_dir=%s, endpoint=%s, pid file dir=%s",
            self.root.root,
            self.connection.endpoint,
            self.config.pid_dir,
        )
        thread = threading.Thread(target=self._poll_loop, name="poller", daemon=True)
        thread.start()
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not self._stop.wait(1.0):
            pass
        return self.wait_for_commands(
            self.config.kill_agent_max_wait_time_seconds if stop_timeout is None else stop_timeout
        )

    def wait_for_commands(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the commands in flight; True if none is left.

        A command that completed moments ago usually has a successor on its way through the
        poll that is still outstanding (polling never stops while a command runs); that one is
        waited for briefly (:data:`HANDOFF_GRACE_SECONDS`) and run too, so a graceful stop does
        not leave the server waiting for an agent that will never answer. No new poll starts.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._futures_lock:
                pending = {f for f in self._futures if not f.done()}
            remaining = deadline - time.monotonic()
            if not pending:
                handoff = self._last_completion + HANDOFF_GRACE_SECONDS - time.monotonic()
                if not self._poll_idle.is_set() and handoff > 0 and remaining > 0:
                    self._poll_idle.wait(min(handoff, remaining))
                    if self._poll_idle.is_set():
                        continue  # the poll answered: maybe with a command to run
                log.info("No command in flight; stopping")
                return True
            if remaining <= 0:
                log.warning(
                    "%d command(s) still running after %.0f s; stopping anyway (the server "
                    "is told after the next start, as after a crash)",
                    len(pending),
                    timeout,
                )
                return False
            log.info("Waiting up to %.0f s for %d command(s) to finish", remaining, len(pending))
            wait_futures(pending, timeout=remaining)

    # -- polling -----------------------------------------------------------------------------

    def _watch_client(self, client: Any) -> None:
        def sent(**_: Any) -> None:
            if not self.first_poll_sent.is_set():
                self.first_poll_sent.set()
                log.info("Polling %s for commands", self.connection.endpoint)

        client.meta.events.register("before-send.codedeploy-commands.PollHostCommand", sent)

        def list_received(request: AWSRequest, **_: Any) -> None:
            with self._received_lock:
                ids = ",".join(self._received)
            request.headers[RECEIVED_COMMANDS_HEADER] = ids

        client.meta.events.register(
            "before-sign.codedeploy-commands.PollHostCommand", list_received
        )

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            if not self._recovered:
                try:
                    self.recover_from_crash()
                except (*_CALL_ERRORS, AgentError) as exc:
                    self._failed_call("report the commands a restart interrupted", exc)
                    continue
            started = time.monotonic()
            try:
                dispatched = self.poll_once()
            except (*_CALL_ERRORS, AgentError) as exc:
                self._failed_call("poll for commands", exc)
                continue
            except Exception:
                log.exception("Unexpected error while polling %s", self.connection.endpoint)
                self._pause(self.backoff.next())
                continue
            self.backoff.reset()
            if not dispatched:
                self._pause(max(0.0, self.config.wait_between_runs - (time.monotonic() - started)))

    def _failed_call(self, what: str, exc: BaseException) -> None:
        if _deregistered(exc):
            # Retrying cannot help: the key is revoked for good. Say so and stop polling.
            self.fatal = (
                f"The server at {self.connection.endpoint} no longer accepts this host's key: "
                f"{_describe(exc)}. Not retrying; register the instance again (opendeploy "
                "instance register) and restart the agent with the new configuration."
            )
            log.error("%s", self.fatal)
            self.request_stop()
            return
        delay = self.backoff.next()
        log.error(
            "Cannot reach InstanceService at %s to %s: %s; retrying in %.1f s",
            self.connection.endpoint,
            what,
            _describe(exc),
            delay,
        )
        self._pause(delay)

    def poll_once(self) -> bool:
        """One PollHostCommand; dispatch the command if one came. True if one was dispatched."""
        client, host_identifier = self.connection.get()
        self._poll_idle.clear()
        try:
            answer = client.poll_host_command(HostIdentifier=host_identifier)
            command = answer.get("HostCommand")
            return bool(command) and self._dispatch(command, host_identifier)
        finally:
            self._poll_idle.set()

    def _dispatch(self, command: dict[str, Any], host_identifier: str) -> bool:
        """Check a polled command and hand it to a worker; True if it was dispatched."""
        if command.get("HostIdentifier") is None or command["HostIdentifier"] not in (
            host_identifier
        ):
            log.error(
                "Host Identifier mismatch: %s is not part of %s",
                command.get("HostIdentifier"),
                host_identifier,
            )
            return False
        if not command.get("CommandName"):
            log.error("Command Name missing in %s", command)
            return False
        command_id = str(command.get("HostCommandIdentifier"))
        with self._received_lock:
            if command_id in self._in_flight:
                log.info("Command %s is running already; not starting it twice", command_id)
                return False
            self._in_flight.add(command_id)
            if command_id in self._received:
                self._received.remove(command_id)
            self._received.appendleft(command_id)
        log.info(
            "Received command %s of %s (%s)",
            command["CommandName"],
            command.get("DeploymentExecutionId"),
            command_id,
        )
        key = str(command.get("DeploymentExecutionId"))
        ticket = self._turns.ticket(key)
        try:
            future = self._pool.submit(self._handle_safely, command, key, ticket)
        except BaseException:
            self._turns.done(key, ticket)
            self._finished(command_id)
            raise
        with self._futures_lock:
            self._futures = {f for f in self._futures if not f.done()}
            self._futures.add(future)
        return True

    # -- crash recovery ----------------------------------------------------------------------

    def recover_from_crash(self) -> list[str]:
        """Fail the commands a crash (or a kill) interrupted, with error code 7.

        Each tracking file younger than 24 h is reported with PutHostCommandComplete Failed
        and then removed; older ones are removed unreported. Raises on a network error, and
        the tracking files stay for the next attempt. Returns the command ids reported.
        """
        reported: list[str] = []
        now = time.time()
        ongoing = self.root.ongoing_dir
        for deployment_id in self.root.ongoing():
            path = ongoing / deployment_id
            try:
                age = now - path.stat().st_mtime
                command_id = path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                continue
            if age < RECOVERY_MAX_AGE_SECONDS and command_id:
                client, _ = self.connection.get()
                log.warning(
                    "The agent stopped while %s ran command %s; reporting it failed (code 7)",
                    deployment_id,
                    command_id,
                )
                try:
                    client.put_host_command_complete(
                        HostCommandIdentifier=command_id,
                        CommandStatus="Failed",
                        Diagnostics=_envelope(json.dumps(recovery_diagnostics())),
                    )
                except BotoClientError as exc:
                    # The server refused it (e.g. the command is long gone): nothing to retry.
                    if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                        raise
                    log.warning("The server refused the report for %s: %s", command_id, exc)
                reported.append(command_id)
            self.root.stop_tracking(deployment_id)
        self._recovered = True
        return reported

    # -- one command -------------------------------------------------------------------------

    def _group_lock(self, group_id: str) -> threading.Lock:
        with self._group_locks_lock:
            return self._group_locks.setdefault(group_id, threading.Lock())

    def _handle_safely(self, command: dict[str, Any], key: str, ticket: int) -> None:
        try:
            self._turns.wait(key, ticket)
            self.handle(command)
        except Exception:
            log.exception("Command %s failed unexpectedly", command.get("HostCommandIdentifier"))
        finally:
            self._turns.done(key, ticket)
            self._finished(str(command.get("HostCommandIdentifier")))

    def _finished(self, command_id: str) -> None:
        with self._received_lock:
            self._in_flight.discard(command_id)

    def _retrying(self, what: str, call: Callable[[Any], _T]) -> _T:
        """``call(client)``, repeated with a short backoff while it fails in a way a repeat may
        cure (see :func:`_retryable`), for up to :data:`CALL_RETRY_SECONDS`; the last error
        is raised. Only for calls the server answers the same when repeated."""
        backoff = Backoff(CALL_RETRY_BASE, CALL_RETRY_CAP)
        deadline = time.monotonic() + CALL_RETRY_SECONDS
        while True:
            client, _ = self.connection.get()
            try:
                return call(client)
            except _CALL_ERRORS as exc:
                delay = backoff.next()
                if not _retryable(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "Cannot %s at %s (attempt %d): %s; retrying in %.1f s",
                    what,
                    self.connection.endpoint,
                    backoff.failures,
                    _describe(exc),
                    delay,
                )
                time.sleep(delay)

    def handle(self, command: dict[str, Any]) -> EventResult | None:
        """Carry out one host command (the worker's job); returns the result, None if skipped."""
        command_id: str = command["HostCommandIdentifier"]
        name: str = command["CommandName"]
        client, host_identifier = self.connection.get()
        try:
            spec = self._specification(client, command, host_identifier)
        except _CALL_ERRORS as exc:
            log.error(
                "Cannot get the deployment specification of %s from %s: %s",
                command_id,
                self.connection.endpoint,
                _describe(exc),
            )
            return None
        except OpenDeployError as exc:
            log.error("Deployment specification of %s is invalid: %s", command_id, exc)
            self._acknowledge(client, command_id, noop=False)
            result = _failure(name, str(exc))
            self._complete(client, command_id, result.diagnostics(), failed=True)
            return result
        with self._group_lock(spec.deployment_group_id):
            return self._run_command(client, command_id, name, spec)

    def _specification(
        self, client: Any, command: dict[str, Any], host_identifier: str
    ) -> DeploymentSpec:
        """The command's deployment specification: asked for once per deployment."""
        execution_id = command["DeploymentExecutionId"]
        with self._specs_lock:
            known = self._specs.get(execution_id)
        if known is not None:
            return known
        spec = self._retrying(
            f"get the deployment specification of {execution_id}",
            lambda client: self._fetch_specification(client, execution_id, host_identifier),
        )
        with self._specs_lock:
            self._specs[execution_id] = spec
            while len(self._specs) > SPEC_CACHE_SIZE:
                del self._specs[next(iter(self._specs))]
        return spec

    def _fetch_specification(
        self, client: Any, execution_id: str, host_identifier: str
    ) -> DeploymentSpec:
        answer = client.get_deployment_specification(
            DeploymentExecutionId=execution_id,
            HostIdentifier=host_identifier,
        )
        system = answer.get("DeploymentSystem")
        if system != "CodeDeploy":
            raise AgentError(f"Deployment System mismatch: expected CodeDeploy, got {system!r}")
        specification = answer.get("DeploymentSpecification")
        if not specification or not specification.get("GenericEnvelope"):
            raise AgentError("Deployment Specification missing")
        envelope = specification["GenericEnvelope"]
        text = open_envelope(envelope.get("Format", ""), envelope.get("Payload", ""))
        return parse_deployment_spec(text)

    def _acknowledge(self, client: Any, command_id: str, *, noop: bool) -> str | None:
        """PutHostCommandAcknowledgement, retried (the server answers a repeated one with the
        command's status: InProgress again when the lost answer had taken it up)."""
        answer = self._retrying(
            f"acknowledge {command_id}",
            lambda client: client.put_host_command_acknowledgement(
                HostCommandIdentifier=command_id,
                Diagnostics=_envelope(json.dumps({"IsCommandNoop": noop})),
            ),
        )
        status: str | None = answer.get("CommandStatus")
        return status

    def _run_command(
        self, client: Any, command_id: str, name: str, spec: DeploymentSpec
    ) -> EventResult | None:
        supported = name in SUPPORTED_COMMANDS
        noop = not supported or event_is_noop(spec, name, self.config)
        try:
            status = self._acknowledge(client, command_id, noop=noop)
        except _CALL_ERRORS as exc:
            log.error(
                "Cannot acknowledge %s at %s: %s",
                command_id,
                self.connection.endpoint,
                _describe(exc),
            )
            return None
        if status in _SKIP_STATUSES:
            log.info("The server answered %s for %s: not running it", status, command_id)
            if status == "Failed" and noop:
                result = EventResult(event=name, status=EventStatus.SKIPPED)
                self._complete(client, command_id, result.diagnostics(), failed=False)
            return None
        self.root.start_tracking(spec.deployment_id, command_id)
        try:
            if not supported:
                result = _failure(name, f"Unsupported command type: {name}.")
            else:
                result = self._execute(client, command_id, name, spec)
            log.info(
                "%s of %s: %s%s",
                name,
                spec.deployment_id,
                result.status.value,
                f" ({result.message})" if result.failed else "",
            )
            self._complete(client, command_id, result.diagnostics(), failed=result.failed)
        finally:
            self.root.stop_tracking(spec.deployment_id)
            self._last_completion = time.monotonic()
        return result

    def _execute(
        self, client: Any, command_id: str, name: str, spec: DeploymentSpec
    ) -> EventResult:
        def send(payload: str) -> None:
            client.post_host_command_update(
                HostCommandIdentifier=command_id, Diagnostics=_envelope(payload)
            )

        with OutputStreamer(
            send, interval=self.update_interval, name=f"output-{spec.deployment_id}"
        ) as streamer:
            return execute_event(spec, name, config=self.config, on_output=streamer)

    def _complete(
        self, client: Any, command_id: str, diagnostics: dict[str, Any], *, failed: bool
    ) -> None:
        """PutHostCommandComplete, retried (see :meth:`_retrying`; a repeated completion is
        ignored by the server), also after a stop request: a finished command should be told."""
        payload = fit_payload(diagnostics, MAX_PAYLOAD_CHARS)
        try:
            self._retrying(
                f"report the result of {command_id}",
                lambda client: client.put_host_command_complete(
                    HostCommandIdentifier=command_id,
                    CommandStatus="Failed" if failed else "Succeeded",
                    Diagnostics=_envelope(payload),
                ),
            )
        except _CALL_ERRORS as exc:
            log.error(
                "Giving up reporting the result of %s to %s: %s; the server will time it out",
                command_id,
                self.connection.endpoint,
                _describe(exc),
            )


def _failure(event: str, message: str) -> EventResult:
    return EventResult(
        event=event,
        status=EventStatus.FAILED,
        error_code=LifecycleErrorCode.UNKNOWN_ERROR,
        message=message,
    )
