"""The dashboard's routes: ``GET /`` redirects to ``/ui/``; everything else lives under ``/ui``.

    routes = web_routes(store=store, settings=settings, lookup_secret=lookup_secret,
                        control=control, is_closing=lambda: notifier.closed)
    create_app(..., extra_routes=[*routes])

Every page and the live stream need a session (a signed cookie from ``/ui/login`` with an admin
access key pair); without one, pages redirect to the login form and the stream answers 401. Only
the stylesheet and script under ``/ui/static`` are public. POST forms carry a CSRF token. The
actions call the server's own control handlers (see :mod:`opendeploy.web.actions`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from opendeploy.api.context import Handler
from opendeploy.settings import ServerSettings
from opendeploy.store.database import Store
from opendeploy.web import live, session, views
from opendeploy.web.actions import Actions, Outcome
from opendeploy.web.render import render

__all__ = ["web_routes"]

_DEPLOYMENT_ID = re.compile(r"d-[A-Z0-9]{9}")
#: The largest form body the dashboard reads (its forms are a few fields).
_MAX_FORM_BYTES = 16 * 1024
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Endpoint = Callable[[Request], Awaitable[Response]]


class _Dashboard:
    """The endpoints, sharing the store, the session key and the actions."""

    def __init__(
        self,
        *,
        store: Store,
        settings: ServerSettings,
        lookup_secret: Callable[[str], str | None],
        control: Mapping[str, Handler],
        is_closing: Callable[[], bool],
    ) -> None:
        self.store = store
        self.settings = settings
        self.lookup_secret = lookup_secret
        self.actions = Actions(store=store, settings=settings, control=control)
        self.is_closing = is_closing
        self._key: bytes | None = None
        self._key_lock = threading.Lock()

    # --- sessions ---------------------------------------------------------------------------

    def key(self) -> bytes:
        """The session signing key, derived from the admin secret (created at server start)."""
        with self._key_lock:
            if self._key is None:
                admin = self.store.access_keys.first("admin")
                if admin is None:
                    raise RuntimeError("the server has no admin access key yet")
                self._key = session.derive_key(admin[1])
            return self._key

    def current(self, request: Request) -> session.Session | None:
        """The request's session if its cookie holds, it was not signed out, and its key is
        still an admin key (the session's row, joined to its key, is read on every request)."""
        found = session.read_session(self.key(), request.cookies.get(session.SESSION_COOKIE))
        if found is None:
            return None
        kind = self.store.dashboard_sessions.key_kind(
            found.nonce, found.access_key_id, now=datetime.now(UTC)
        )
        return found if kind == "admin" else None

    def start_session(self, access_key_id: str) -> session.Session:
        """A new session of ``access_key_id``, recorded server-side."""
        started = session.new_session(access_key_id)
        self.store.dashboard_sessions.start(
            started.nonce,
            access_key_id,
            now=datetime.now(UTC),
            expires_at=datetime.fromtimestamp(started.expires_at, UTC),
        )
        return started

    def check_login(self, access_key_id: str, secret: str) -> bool:
        stored = self.lookup_secret(access_key_id) if access_key_id else None
        matches = session.secrets_match(secret, stored)
        return matches and self.store.commands.key_kind(access_key_id) == "admin"

    def _cookie_args(self) -> dict[str, Any]:
        return {
            "path": "/ui",
            "httponly": True,
            "samesite": "strict",
            "secure": self.settings.tls,
        }

    # --- responses --------------------------------------------------------------------------

    def page(
        self,
        request: Request,
        template: str,
        who: session.Session | None,
        *,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        flash = session.unsign(self.key(), request.cookies.get(session.FLASH_COOKIE))
        html = render(
            template,
            session=who,
            csrf=who.csrf_token(self.key()) if who else "",
            flash=Outcome(bool(flash["ok"]), str(flash["m"])) if flash else None,
            **context,
        )
        response = HTMLResponse(html, status_code=status_code, headers=_SECURITY_HEADERS)
        if flash is not None:
            response.delete_cookie(session.FLASH_COOKIE, path="/ui")
        return response

    def redirect_with(self, url: str, outcome: Outcome) -> Response:
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            session.FLASH_COOKIE,
            session.sign(self.key(), {"ok": outcome.ok, "m": outcome.message}),
            max_age=60,
            **self._cookie_args(),
        )
        return response


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


def _safe_next(value: str | None) -> str:
    """Only paths inside the dashboard (never another host: ``//evil`` or ``/\\evil``)."""
    if value and value.startswith("/ui") and not value.startswith(("//", "/\\")):
        return value
    return "/ui/"


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the only kind the dashboard's forms send)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            break
    parsed = parse_qs(body[:_MAX_FORM_BYTES].decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _routes(d: _Dashboard) -> list[BaseRoute]:
    run = anyio.to_thread.run_sync

    def authed(
        endpoint: Callable[[Request, session.Session], Awaitable[Response]],
    ) -> Endpoint:
        async def call(request: Request) -> Response:
            who = await run(d.current, request)
            if who is None:
                return _login_redirect(request)
            return await endpoint(request, who)

        return call

    def posted(
        endpoint: Callable[[Request, session.Session, dict[str, str]], Awaitable[Response]],
    ) -> Endpoint:
        async def call(request: Request) -> Response:
            who = await run(d.current, request)
            if who is None:
                return PlainTextResponse("Sign in first.", status_code=401)
            form = await _form(request)
            if not who.csrf_ok(d.key(), form.get("csrf_token")):
                return PlainTextResponse(
                    "csrf_token: missing or not this session's; reload the page and try again.",
                    status_code=403,
                )
            return await endpoint(request, who, form)

        return call

    def not_found(request: Request, who: session.Session, what: str) -> Response:
        return d.page(request, "not_found.html", who, status_code=404, what=what, section="")

    async def login_form(request: Request) -> Response:
        return d.page(
            request,
            "login.html",
            None,
            next=_safe_next(request.query_params.get("next")),
            error="",
            access_key_id="",
            section="",
        )

    async def login(request: Request) -> Response:
        form = await _form(request)
        key_id = form.get("access_key_id", "").strip()
        ok = await run(d.check_login, key_id, form.get("secret_access_key", ""))
        if not ok:
            return d.page(
                request,
                "login.html",
                None,
                status_code=401,
                next=_safe_next(form.get("next")),
                error="That access key pair is not an admin key of this server.",
                access_key_id=key_id,
                section="",
            )
        started = await run(d.start_session, key_id)
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
        response.set_cookie(
            session.SESSION_COOKIE,
            session.session_cookie(d.key(), started),
            max_age=session.SESSION_SECONDS,
            **d._cookie_args(),
        )
        return response

    async def logout(request: Request, who: session.Session, form: dict[str, str]) -> Response:
        # Ended here, not only in this browser: a copy of the cookie stops working too.
        await run(d.store.dashboard_sessions.end, who.nonce)
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(session.SESSION_COOKIE, path="/ui")
        return response

    async def home(request: Request, who: session.Session) -> Response:
        page = views.page_number(request.query_params.get("page"))
        view = await run(lambda: views.home(d.store, page=page))
        return d.page(request, "home.html", who, section="apps", **view)

    async def application(request: Request, who: session.Session) -> Response:
        name = request.path_params["app"]
        try:
            view = await run(lambda: views.application(d.store, name))
        except views.NotFound as exc:
            return not_found(request, who, str(exc))
        return d.page(request, "application.html", who, section="apps", **view)

    async def group(request: Request, who: session.Session) -> Response:
        page = views.page_number(request.query_params.get("page"))
        app, name = request.path_params["app"], request.path_params["group"]
        try:
            view = await run(lambda: views.group(d.store, app, name, page=page))
        except views.NotFound as exc:
            return not_found(request, who, str(exc))
        return d.page(request, "group.html", who, section="apps", **view)

    async def deployment(request: Request, who: session.Session) -> Response:
        ident = request.path_params["id"]
        page = views.page_number(request.query_params.get("page"))
        instance = request.query_params.get("instance") or None
        try:
            if not _DEPLOYMENT_ID.fullmatch(ident):
                raise views.NotFound(f"deployment {ident!r}")
            view = await run(lambda: views.deployment(d.store, ident, page=page, instance=instance))
        except views.NotFound as exc:
            return not_found(request, who, str(exc))
        return d.page(request, "deployment.html", who, section="apps", **view)

    async def events(request: Request) -> Response:
        who = await run(d.current, request)
        if who is None:
            return PlainTextResponse("Sign in first.", status_code=401)
        ident = request.path_params["id"]
        if not _DEPLOYMENT_ID.fullmatch(ident) or await run(d.store.deployments.get, ident) is None:
            return PlainTextResponse(f"deployment {ident!r} does not exist", status_code=404)
        stream = live.deployment_events(
            d.store,
            ident,
            page=views.page_number(request.query_params.get("page")),
            instance=request.query_params.get("instance") or None,
            csrf=who.csrf_token(d.key()),
            is_closing=d.is_closing,
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def action(
        run_action: Callable[[session.Session, str, dict[str, str]], Outcome],
    ) -> Endpoint:
        async def call(request: Request, who: session.Session, form: dict[str, str]) -> Response:
            ident = request.path_params["id"]
            if not _DEPLOYMENT_ID.fullmatch(ident):
                return PlainTextResponse(f"deployment {ident!r} does not exist", status_code=404)
            outcome = await run(lambda: run_action(who, ident, form))
            return d.redirect_with(f"/ui/deployments/{outcome.deployment_id or ident}", outcome)

        return posted(call)

    stop = action(
        lambda who, ident, form: d.actions.stop(
            who.access_key_id, ident, rollback=form.get("rollback") == "true"
        )
    )
    continue_ = action(lambda who, ident, _form: d.actions.continue_(who.access_key_id, ident))
    redeploy = action(lambda who, ident, _form: d.actions.redeploy(who.access_key_id, ident))

    async def instances(request: Request, who: session.Session) -> Response:
        page = views.page_number(request.query_params.get("page"))
        registered = request.query_params.get("status") != "Deregistered"
        view = await run(
            lambda: views.instances(
                d.store,
                page=page,
                registered=registered,
                dead_after_seconds=d.settings.agent_dead_after_seconds,
            )
        )
        return d.page(request, "instances.html", who, section="instances", **view)

    async def notifications(request: Request, who: session.Session) -> Response:
        view = await run(
            lambda: views.notifications(
                d.store,
                deployment_id=request.query_params.get("deployment"),
                status=request.query_params.get("status"),
            )
        )
        return d.page(request, "notifications.html", who, section="notifications", **view)

    return [
        Route("/", authed(home), methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", posted(logout), methods=["POST"]),
        Route("/applications/{app}", authed(application), methods=["GET"]),
        Route("/applications/{app}/groups/{group}", authed(group), methods=["GET"]),
        Route("/deployments/{id}", authed(deployment), methods=["GET"]),
        Route("/deployments/{id}/events", events, methods=["GET"]),
        Route("/deployments/{id}/stop", stop, methods=["POST"]),
        Route("/deployments/{id}/continue", continue_, methods=["POST"]),
        Route("/deployments/{id}/redeploy", redeploy, methods=["POST"]),
        Route("/instances", authed(instances), methods=["GET"]),
        Route("/notifications", authed(notifications), methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("opendeploy.web", "static")]), name="static"),
    ]


async def _to_dashboard(_request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=307)


def web_routes(
    *,
    store: Store,
    settings: ServerSettings,
    lookup_secret: Callable[[str], str | None],
    control: Mapping[str, Handler],
    is_closing: Callable[[], bool] = lambda: False,
) -> list[BaseRoute]:
    """The dashboard under ``/ui`` and ``GET /`` → ``/ui/`` (``POST /`` stays the API's).

    ``control`` is the server's table of control-plane handlers (the ones ``POST /`` serves,
    with their admin check and engine wake-up); ``is_closing`` turns true when the server shuts
    down, so that open live streams end instead of holding the shutdown up.
    """
    dashboard = _Dashboard(
        store=store,
        settings=settings,
        lookup_secret=lookup_secret,
        control=control,
        is_closing=is_closing,
    )
    return [
        Route("/", _to_dashboard, methods=["GET"]),
        Mount("/ui", routes=_routes(dashboard)),
    ]
