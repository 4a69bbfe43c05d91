"""The Starlette application: both CodeDeploy wire protocols over one table of operations.

Routes:
- ``POST /`` with ``X-Amz-Target: <prefix>.<Operation>``: awsJson1_1 (boto3, aws-cli v1);
- ``POST /service/<prefix>/operation/<Operation>``: Smithy RPC v2 CBOR;
- ``GET /healthz``: liveness, unauthenticated;
- whatever ``extra_routes`` adds (the Command API's services join through ``services``; the S3
  bundle store and the dashboard mount their own routes here).

Every request goes through the same steps, off the event loop (handlers and the store are
synchronous): SigV4 -> operation lookup -> body decode -> model validation -> handler -> output
serialization. A handler that is a coroutine function (the agents' PollHostCommand, which may
wait for minutes, and their acknowledgements and completions) is awaited on the event loop
instead, and so are the steps around it when the key's secret is remembered (otherwise the
authentication looks it up in a thread).
Errors are rendered once, in the protocol the request came in, and one structured log line is
written per request.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Lifespan, Receive, Scope, Send

from opendeploy import metrics
from opendeploy.api import sigv4
from opendeploy.api.backlog import Backlog
from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.errors import WireError, to_wire_error, validation_error
from opendeploy.api.model import ServiceSpec
from opendeploy.api.protocols.awsjson import AWS_JSON_1_1, parse_target
from opendeploy.api.protocols.base import WireProtocol
from opendeploy.api.protocols.rpcv2cbor import RPC_V2_CBOR
from opendeploy.api.shapes import ShapeViolation, decode_input, encode_output
from opendeploy.blocking import run_blocking
from opendeploy.errors import ServiceError
from opendeploy.service_errors import (
    InvalidSignatureError,
    RequestEntityTooLargeError,
    UnknownOperationError,
)

#: For coroutine handlers: a future done as soon as the client of the request disconnects.
client_gone: ContextVar[asyncio.Future[None] | None] = ContextVar("client_gone", default=None)


async def _until_disconnected(receive: Receive) -> None:
    """Return when the ASGI server reports the client gone (the body has been read already)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


#: Operations held open until something happens (their handlers learn when the client leaves).
_HELD = frozenset({"PollHostCommand"})

#: The Command API's operations: what every agent calls all the time.
_AGENT_OPERATIONS = frozenset(
    {
        "PollHostCommand",
        "GetDeploymentSpecification",
        "PutHostCommandAcknowledgement",
        "PostHostCommandUpdate",
        "PutHostCommandComplete",
    }
)

log = logging.getLogger("opendeploy.api")

#: The largest request body the API reads: its operations' bodies are kilobytes (inline AppSpec
#: content the largest). A larger one is refused (413) before it is read.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Read before anything is known of the request's signature; before reading further, the
#: request must show a current signature by a known access key (sigv4.check_claim), so that an
#: unsigned or forged request costs the server its headers and this much, whatever its size.
UNCHECKED_BODY_BYTES = 64 * 1024

#: (access key id, request id) -> the context handed to a handler.
ContextFactory = Callable[[str, str], RequestContext]

#: A handler that waits without holding a thread; it runs its own blocking work in threads.
AsyncHandler = Callable[[RequestContext, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ServiceBinding:
    """A service model and the handlers that implement its operations."""

    spec: ServiceSpec
    handlers: Mapping[str, Handler | AsyncHandler]


@dataclass(frozen=True)
class _Call:
    protocol: WireProtocol
    target: tuple[str, str] | None  # (service prefix, operation) as the request names them
    signed: sigv4.SignedRequest
    request_id: str
    #: The :class:`Backlog` token of the call (None: not counted).
    arrival: int | None = None


@dataclass
class _Outcome:
    status: int
    body: bytes
    operation: str = "-"
    principal: str = "-"
    error: WireError | None = None


def _request_id() -> str:
    """A request id in the form of a random UUID, as AWS's: from ``random`` rather than
    ``uuid.uuid4()``'s system call per request (it identifies, it does not protect)."""
    bits = _random.getrandbits(128)
    # The version (4) and variant (10) bits, as uuid4 sets them.
    bits = (bits & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _NotRemembered(Exception):
    """The secret of this key is not remembered: looking it up needs the database."""


class _Dispatcher:
    """Runs one call through auth, decoding, validation, the handler and serialization."""

    def __init__(
        self,
        services: Sequence[ServiceBinding],
        lookup_secret: sigv4.SecretLookup,
        context_factory: ContextFactory,
        clock: Callable[[], datetime],
        backlog: Backlog | None = None,
    ) -> None:
        self._backlog = backlog
        self._by_prefix: dict[str, ServiceBinding] = {}
        for binding in services:
            for prefix in binding.spec.target_prefixes:
                self._by_prefix[prefix] = binding
        self._lookup_secret = lookup_secret
        # A lookup that remembers secrets (api.key_cache.SecretCache) answers without the store.
        self._peek_secret: sigv4.SecretLookup | None = getattr(lookup_secret, "peek", None)
        self._context_factory = context_factory
        self._clock = clock

    def is_async(self, target: tuple[str, str] | None) -> bool:
        """Whether the operation ``target`` names has a coroutine handler (see :meth:`serve`)."""
        if target is None or (binding := self._by_prefix.get(target[0])) is None:
            return False
        return inspect.iscoroutinefunction(binding.handlers.get(target[1]))

    def __call__(self, call: _Call) -> _Outcome:
        """The whole call, synchronously (in a worker thread)."""
        outcome = _Outcome(status=200, body=b"")
        try:
            handler, context, params, operation = self._prepare(call, outcome)
            result = handler(context, params)
            self._finish(call, outcome, operation, result)
        except Exception as exc:
            self._fail(call, outcome, exc)
        return outcome

    async def serve(self, call: _Call) -> _Outcome:
        """The call with a coroutine handler, on the loop; authentication too when the key's
        secret is remembered (otherwise it is looked up in a thread)."""
        outcome = _Outcome(status=200, body=b"")
        try:
            try:
                prepared = self._prepare(call, outcome, self._remembered_secret)
            except _NotRemembered:
                prepared = await run_blocking(self._prepare, call, outcome)
            handler, context, params, operation = prepared
            result = await handler(context, params)
            # Encoded here, not in a worker thread: it is quick, and a long poll's answer
            # queued behind a fleet's calls for a thread was an agent gone quiet for seconds.
            self._finish(call, outcome, operation, result)
        except Exception as exc:
            self._fail(call, outcome, exc)
        return outcome

    async def check_claim(self, scope: Scope) -> Exception | None:
        """What refuses the request's signature claim before its body is read, if anything
        does (see :data:`UNCHECKED_BODY_BYTES`); the secret is looked up in a thread unless it
        is remembered."""
        signed = sigv4.SignedRequest.from_asgi(scope, b"")
        try:
            try:
                sigv4.check_claim(signed, self._remembered_secret, now=self._clock())
            except _NotRemembered:
                await run_blocking(
                    functools.partial(
                        sigv4.check_claim, signed, self._lookup_secret, now=self._clock()
                    )
                )
        except ServiceError as exc:
            return exc
        return None

    @staticmethod
    def refusal(protocol: WireProtocol, exc: Exception) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, headers) refusing a request in ``protocol`` before it was served."""
        request_id = _request_id()
        error = to_wire_error(exc, request_id)
        log.info(
            "request op=- status=%d request_id=%s protocol=%s error=%s",
            error.status,
            request_id,
            protocol.name,
            error.code,
        )
        headers = protocol.headers(request_id, error.code)
        # The body is left unread: the connection cannot carry another request (a client that
        # sent "Expect: 100-continue" never sends it, one that did not is still sending it).
        headers["Connection"] = "close"
        return error.status, protocol.error_body(error.code, error.message), headers

    def _remembered_secret(self, access_key_id: str) -> str | None:
        """The key's secret if the lookup remembers it (no database); else raises
        :class:`_NotRemembered`."""
        secret = self._peek_secret(access_key_id) if self._peek_secret is not None else None
        if secret is None:
            raise _NotRemembered(access_key_id)
        return str(secret)

    def _prepare(
        self, call: _Call, outcome: _Outcome, lookup_secret: sigv4.SecretLookup | None = None
    ) -> tuple[Any, RequestContext, Any, Any]:
        """Authenticate, resolve, decode and validate: (handler, context, params, operation)."""
        if self._backlog is not None and call.arrival is not None:
            self._backlog.started(call.arrival)
        verified = sigv4.verify(
            call.signed, lookup_secret or self._lookup_secret, now=self._clock()
        )
        outcome.principal = verified.access_key_id
        binding, operation = self._resolve(call.target)
        outcome.operation = operation.name
        if verified.service not in binding.spec.signing_names:
            names = "', '".join(sorted(binding.spec.signing_names))
            raise InvalidSignatureError(
                f"Credential should be scoped to correct service: '{names}'."
            )
        handler = binding.handlers.get(operation.name)
        if handler is None:
            raise UnknownOperationError(
                f"Operation {operation.name} of {binding.spec.name} is not implemented by "
                "this OpenDeploy server."
            )
        document = call.protocol.loads(call.signed.body)
        try:
            params = decode_input(operation.input_shape, document, call.protocol.codec)
        except ShapeViolation as violation:
            raise validation_error(violation, operation) from violation
        context = self._context_factory(verified.access_key_id, call.request_id)
        return handler, context, params, operation

    @staticmethod
    def _finish(call: _Call, outcome: _Outcome, operation: Any, result: dict[str, Any]) -> None:
        wire = encode_output(operation.output_shape, result, call.protocol.codec)
        outcome.body = call.protocol.dumps(wire)

    @staticmethod
    def _fail(call: _Call, outcome: _Outcome, exc: Exception) -> None:
        error = to_wire_error(exc, call.request_id)
        if error.is_fault:
            log.error("fault request_id=%s op=%s", call.request_id, outcome.operation, exc_info=exc)
        outcome.error = error
        outcome.status = error.status
        outcome.body = call.protocol.error_body(error.code, error.message)

    def _resolve(self, target: tuple[str, str] | None) -> tuple[ServiceBinding, Any]:
        if target is None:
            raise UnknownOperationError(
                "The request names no operation: send X-Amz-Target: <service>.<Operation>."
            )
        prefix, name = target
        binding = self._by_prefix.get(prefix)
        operation = binding.spec.operation(name) if binding is not None else None
        if binding is None or operation is None:
            raise UnknownOperationError(f"Operation {prefix}.{name} is not known to this server.")
        return binding, operation


def create_app(
    *,
    services: Sequence[ServiceBinding],
    lookup_secret: sigv4.SecretLookup,
    context_factory: ContextFactory,
    extra_routes: Sequence[BaseRoute] = (),
    lifespan: Lifespan[Starlette] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    backlog: Backlog | None = None,
    context_headers: Mapping[bytes, ContextVar[str | None]] | None = None,
    context_header_limits: Mapping[bytes, int] | None = None,
) -> Starlette:
    """Build the ASGI app serving ``services`` in both protocols, plus ``extra_routes``.

    ``backlog``, when given, counts each call from its arrival until it is handled (what the
    engine's dead-agent rule allows for; see :mod:`opendeploy.api.backlog`).
    ``context_headers``: request headers (lower-case names) whose value a call's handler reads
    from a context variable (the agent's version), set for that call only, in both protocols;
    each value is cut to ``context_header_limits[name]`` characters (default 64).

    Example::

        app = create_app(
            services=[ServiceBinding(codedeploy_service(), load_handlers())],
            lookup_secret=store.access_keys.get_secret,
            context_factory=lambda key, rid: RequestContext(store, settings, key, rid),
        )
    """
    dispatch = _Dispatcher(services, lookup_secret, context_factory, clock, backlog)
    header_variables = dict(context_headers or {})
    header_limits = dict(context_header_limits or {})

    async def read_body(
        scope: Scope, receive: Receive, protocol: WireProtocol
    ) -> bytes | tuple[int, bytes, dict[str, str]] | None:
        """The request's body; or the refusal to answer instead (too large, or a large body
        whose signature claim does not hold); None when the client left."""
        declared = _content_length(scope)
        checked = False
        if declared is not None and declared > MAX_BODY_BYTES:
            return dispatch.refusal(protocol, _too_large(declared))
        body = bytearray()
        while True:
            if not checked and (
                len(body) > UNCHECKED_BODY_BYTES
                or (declared is not None and declared > UNCHECKED_BODY_BYTES)
            ):
                refused = await dispatch.check_claim(scope)
                if refused is not None:
                    return dispatch.refusal(protocol, refused)
                checked = True
            message = await receive()
            if message["type"] == "http.disconnect":
                return None  # nobody is left to answer
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                return dispatch.refusal(protocol, _too_large(len(body)))
            if not message.get("more_body", False):
                return bytes(body)

    async def rpc_v2_cbor(request: Request) -> Response:
        target = (request.path_params["service"], request.path_params["operation"])
        body = await read_body(request.scope, request.receive, RPC_V2_CBOR)
        if body is None:
            return Response(b"", status_code=400)  # nobody is left to read it
        if isinstance(body, tuple):
            status, payload, headers = body
        else:
            status, payload, headers = await _serve(
                request.scope, request.receive, body, RPC_V2_CBOR, target
            )
        return Response(payload, status_code=status, headers=headers)

    async def _serve(
        scope: Scope,
        receive: Receive,
        body: bytes,
        protocol: WireProtocol,
        target: tuple[str, str] | None,
    ) -> tuple[int, bytes, dict[str, str]]:
        """One call, from its body to (status, body, headers) in ``protocol``."""
        started = time.perf_counter()
        arrival = backlog.arrived() if backlog is not None else None
        request_id = _request_id()
        header_tokens = [
            (
                variable,
                variable.set(value.decode("latin-1")[: header_limits.get(name, _HEADER_LIMIT)]),
            )
            for name, value in (scope["headers"] if header_variables else ())
            if (variable := header_variables.get(name)) is not None
        ]
        try:
            call = _Call(
                protocol=protocol,
                target=target,
                signed=sigv4.SignedRequest.from_asgi(scope, body),
                request_id=request_id,
                arrival=arrival,
            )
            if not dispatch.is_async(target):
                agent = target is not None and target[1] in _AGENT_OPERATIONS
                outcome = await run_blocking(dispatch, call, control=not agent)
            elif target is not None and target[1] in _HELD:
                # A held call (the long poll) may wait a long time: let it know at once when its
                # client goes away.
                watcher = asyncio.ensure_future(_until_disconnected(receive))
                token = client_gone.set(watcher)
                try:
                    outcome = await dispatch.serve(call)
                finally:
                    client_gone.reset(token)
                    watcher.cancel()
            else:
                outcome = await dispatch.serve(call)
        finally:
            if backlog is not None and arrival is not None:
                backlog.started(arrival)  # a no-op once the dispatcher has counted it
            for variable, header_token in header_tokens:
                variable.reset(header_token)
        code = outcome.error.code if outcome.error else None
        metrics.observe_request(outcome.operation, code, time.perf_counter() - started)
        # The agents' own calls (a fleet's polls, acknowledgements …) are logged at DEBUG: at
        # INFO they were most of the log and a measurable part of each call's cost.
        level = (
            logging.DEBUG if outcome.operation in _AGENT_OPERATIONS and not code else logging.INFO
        )
        if log.isEnabledFor(level):
            log.log(
                level,
                "request op=%s status=%d ms=%.1f request_id=%s principal=%s protocol=%s%s",
                outcome.operation,
                outcome.status,
                (time.perf_counter() - started) * 1000,
                request_id,
                outcome.principal,
                protocol.name,
                f" error={code}" if code else "",
            )
        return outcome.status, outcome.body, protocol.headers(request_id, code)

    async def aws_json(scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /``, as a bare ASGI app: every agent call of a fleet comes this way, and
        Starlette's routing, request and response objects were about a tenth of its Python
        time in a profile of a 1,000-host deployment (a few per cent of its whole CPU)."""
        try:
            body = await read_body(scope, receive, AWS_JSON_1_1)
            if body is None:
                return  # nobody is left to answer
            if isinstance(body, tuple):
                status, payload, headers = body
            else:
                target = None
                for name, value in scope["headers"]:
                    if name == b"x-amz-target":
                        target = parse_target(value.decode("latin-1"))
                        break
                status, payload, headers = await _serve(scope, receive, body, AWS_JSON_1_1, target)
        except Exception:
            # What Starlette's error middleware would do, had the call gone through it: answer
            # 500, and let the server log the error.
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": b"Internal Server Error"})
            raise
        raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]
        raw_headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes: list[BaseRoute] = [
        # _AwsJsonFirst answers POST / before routing; the route stays so that other methods
        # get their 405. (A partial is not a function, so Starlette takes it as an ASGI app.)
        Route("/", functools.partial(aws_json), methods=["POST"]),
        Route("/service/{service}/operation/{operation}", rpc_v2_cbor, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        *extra_routes,
    ]
    return _AwsJsonFirst(aws_json, routes=routes, lifespan=lifespan)


def _content_length(scope: Scope) -> int | None:
    """The request's Content-Length, if it declares a valid one."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _too_large(size: int) -> RequestEntityTooLargeError:
    return RequestEntityTooLargeError(
        f"The request body ({size} bytes or more) is larger than the {MAX_BODY_BYTES} bytes "
        "this API accepts."
    )


#: The longest value of a ``context_headers`` header kept (they name versions, not documents).
_HEADER_LIMIT = 64


class _AwsJsonFirst(Starlette):
    """Starlette, except that ``POST /`` goes straight to ``endpoint``, before any middleware.

    Every call of a fleet's agents comes that way, and each layer it skipped (Starlette's error
    middleware and routing, the middleware added with ``add_middleware``) was a per cent or two
    of a 10,000-host server's CPU. ``endpoint`` does itself what it needed of them: it answers
    500 when it fails (the ``context_headers`` are set for every call, whatever its route)."""

    def __init__(self, endpoint: ASGIApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/":
            await self._endpoint(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)
