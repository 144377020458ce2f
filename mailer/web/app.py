"""The web application (Starlette): `create_app(site)`.

    GET|HEAD /r/{token}             the office's page; recorded only as "link opened"
    POST     /r/{token}             the answer (CSRF token, same origin, rate limited)
    GET|HEAD /r/{token}/invite.ics  the calendar entry of the event's current version
    GET|HEAD /static/web.css, /static/dashboard.js, /static/fonts/{name}   every asset from
                                    the app itself
    /dashboard…                     the coordinator's dashboard (mailer.web.dashboard)

A link that does not open (malformed, forged, unknown, revoked, expired) gets a Thai page with
the coordinator's phone and a 4xx status, and changes nothing. The database is used from
Starlette's thread pool (the ledger's calls block); pages are rendered by the project's
sandboxed Jinja2 (`mailer.compose.letters.environment`, autoescaped) from templates/web/.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from mailer.compose.invites import CalendarVersion, InviteBuilder
from mailer.compose.letters import environment
from mailer.errors import TemplateProblem
from mailer.identity import event_uid
from mailer.replies.online import Evidence, answer
from mailer.web.dashboard import Dashboard
from mailer.web.guard import COOKIE, FORM_AGE, Forms, RateLimit, same_origin
from mailer.web.pages import (
    Office,
    Site,
    coordinator_values,
    find_office,
    page_values,
    read_answer,
)
from mailer.web.store import record_visit
from mailer.web.tokens import Problem, TokenProblem

FONT_DIRS = (Path("/usr/share/fonts/truetype/tlwg"), Path("/usr/share/fonts/truetype/thai"))
FONTS = ("Garuda.ttf", "Garuda-Bold.ttf")  # Debian's fonts-thai-tlwg; the CSS falls back
MAX_BODY = 16_384  # bytes a posted answer may be
STATUS: dict[Problem, int] = {
    "malformed": 400,
    "forged": 403,
    "unknown": 404,
    "revoked": 403,
    "expired": 410,
    "rate": 429,
    "form": 403,
}
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",  # the link is the key: never sent to another site
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; font-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
PAGES = ("rsvp", "done", "problem", "dashboard", "dashboard_login", "dashboard_off",
         "dashboard_office", "dashboard_problem", "dashboard_review")  # fmt: skip
_NONCE = re.compile(r"[A-Za-z0-9_-]{20,40}")


class RsvpApp:
    """The routes over one `Site`; `create_app` makes the Starlette application of it."""

    def __init__(self, site: Site, public_url: str = "") -> None:
        self.site = site
        self.public_origin = _origin(public_url) if public_url else None
        self.https = public_url.startswith("https://")  # behind an https proxy: Secure cookies
        self.forms = Forms(site.secret_key)
        self.by_link = RateLimit(site.posts_per_link, site.post_window)
        self.by_address = RateLimit(site.posts_per_address, site.post_window)
        env = environment(site.templates_dir, site.campaign.timezone, autoescape=True)
        try:
            self.templates = {name: env.get_template(f"web/{name}.html") for name in PAGES}
        except jinja2.TemplateError as exc:
            raise TemplateProblem(
                f"{site.templates_dir / 'web'}: {exc}; restore templates/web/ from mailer"
            ) from exc
        self.coordinator = coordinator_values(site.campaign)
        self.css = (site.templates_dir / "web" / "web.css").read_bytes()
        self.script = (site.templates_dir / "web" / "dashboard.js").read_bytes()

    @cached_property
    def invites(self) -> InviteBuilder:
        return InviteBuilder(self.site.campaign)

    # --- responses ---------------------------------------------------------------------

    def html(self, name: str, values: dict[str, Any], status: int = 200) -> HTMLResponse:
        page = self.templates[name].render({"coordinator": self.coordinator, **values})
        return HTMLResponse(page, status_code=status, headers=HEADERS)

    def problem(self, problem: Problem) -> HTMLResponse:
        return self.html("problem", {"problem": problem}, STATUS[problem])

    # --- routes ------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        token = request.path_params["token"]

        def read() -> tuple[Office, dict[str, Any]]:  # one trip to a worker thread
            office = find_office(self.site, token)
            self._visited(request, office, "page")
            return office, page_values(self.site, office)

        try:
            office, values = await run_in_threadpool(read)
        except TokenProblem as exc:
            return self.problem(exc.problem)
        return self._page(request, office, values)

    async def _show(
        self, request: Request, office: Office, extra: dict[str, Any], status: int = 200
    ) -> Response:
        values = await run_in_threadpool(page_values, self.site, office)
        return self._page(request, office, {**values, **extra}, status)

    def _page(
        self, request: Request, office: Office, values: dict[str, Any], status: int = 200
    ) -> Response:
        """The office's page with a form of its own (and the cookie the form goes with)."""
        cookie = request.cookies.get(COOKIE) or ""
        nonce, field = self.forms.issue(office.token, cookie if _NONCE.fullmatch(cookie) else None)
        values = {"problems": {}, "given": {}, **values, "csrf": field, "self_href": office.token}
        response = self.html("rsvp", values, status)
        response.set_cookie(
            COOKIE, nonce, max_age=FORM_AGE, path=request.url.path, httponly=True,
            secure=request.url.scheme == "https" or self.https, samesite="strict",
        )  # fmt: skip
        return response

    def _visited(self, request: Request, office: Office, what: str) -> None:
        agent = request.headers.get("user-agent", "")
        record_visit(self.site.ledger, office.invitee.invitee_id, request.method, what, agent)

    async def post(self, request: Request) -> Response:
        address = request.client.host if request.client else ""
        if not self.by_address.allow(address):
            return self.problem("rate")
        token = request.path_params["token"]
        try:
            office = await run_in_threadpool(find_office, self.site, token)
        except TokenProblem as exc:
            return self.problem(exc.problem)
        if not self.by_link.allow(office.invitee.invitee_id):
            return self.problem("rate")
        if int(request.headers.get("content-length") or MAX_BODY + 1) > MAX_BODY:
            return self.problem("malformed")
        if not same_origin(request, self.public_origin):
            return self.problem("form")
        form = await request.form(max_files=0, max_fields=20)
        field = form.get("csrf")
        if not self.forms.check(token, request.cookies.get(COOKIE), str(field or "")):
            return self.problem("form")
        if not office.open(self.site.ledger.clock()):
            return await self._show(request, office, {}, 403)
        given, problems, typed = read_answer(form)
        if given is None:
            return await self._show(request, office, {"problems": problems, "given": typed}, 422)
        evidence = Evidence(address, request.headers.get("user-agent", ""), office.sequence)

        def record() -> dict[str, Any]:  # one trip to a worker thread
            site = self.site
            recorded = answer(site.ledger, site.campaign, office.invitee.invitee_id, given,
                              evidence)  # fmt: skip
            return {**page_values(site, office), "changed": recorded.changed}

        values = await run_in_threadpool(record)
        return self.html("done", {**values, "self_href": office.token})

    async def ics(self, request: Request) -> Response:
        def read() -> Office:
            office = find_office(self.site, request.path_params["token"])
            self._visited(request, office, "ics")
            return office

        try:
            office = await run_in_threadpool(read)
        except TokenProblem as exc:
            return self.problem(exc.problem)
        campaign = self.site.campaign
        method = "CANCEL" if office.cancelled else "REQUEST"
        data = self.invites.build(
            office.invitee,
            CalendarVersion(office.event, method, office.sequence),
            uid=event_uid(campaign, office.invitee.invitee_id),
            stamp=self.site.ledger.clock(),
        )
        headers = {**HEADERS, "Content-Disposition": 'attachment; filename="invite.ics"'}
        return Response(data, media_type=f"text/calendar; method={method}", headers=headers)

    async def stylesheet(self, request: Request) -> Response:
        return Response(self.css, media_type="text/css", headers=_cached())

    async def javascript(self, request: Request) -> Response:
        return Response(self.script, media_type="text/javascript", headers=_cached())

    async def font(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name in FONTS:
            for folder in FONT_DIRS:
                if (folder / name).is_file():
                    return FileResponse(folder / name, media_type="font/ttf", headers=_cached())
        return Response(b"", status_code=404, headers=HEADERS)


def _cached() -> dict[str, str]:
    return {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def server_options(trusted_proxies: tuple[str, ...]) -> dict[str, Any]:
    """uvicorn's options for `mailer web`: forwarded headers believed only from the
    configured proxies (none: ignored)."""
    return {
        "proxy_headers": bool(trusted_proxies),
        "forwarded_allow_ips": ",".join(trusted_proxies) or "127.0.0.1",
        "server_header": False,
        "log_level": "warning",
    }


def create_app(site: Site, public_url: str = "") -> Starlette:
    rsvp = RsvpApp(site, public_url)
    routes = [
        Route("/r/{token}", rsvp.page, methods=["GET", "HEAD"]),
        Route("/r/{token}", rsvp.post, methods=["POST"]),
        Route("/r/{token}/invite.ics", rsvp.ics, methods=["GET", "HEAD"]),
        Route("/static/web.css", rsvp.stylesheet, methods=["GET", "HEAD"]),
        Route("/static/dashboard.js", rsvp.javascript, methods=["GET", "HEAD"]),
        Route("/static/fonts/{name}", rsvp.font, methods=["GET", "HEAD"]),
    ]
    board = Dashboard(site, rsvp.templates, (rsvp.forms, rsvp.public_origin, rsvp.https))
    routes += board.routes()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if site.password_hash:
            board.boards.warm()  # the dashboard's first view need not wait for it
        yield
        board.boards.close()

    return Starlette(routes=routes, lifespan=lifespan)
