"""The coordinator's dashboard, served by the same app as the offices' pages:

    GET       /dashboard/login, POST /dashboard/login    the password (rate limited per address)
    POST      /dashboard/logout
    GET|HEAD  /dashboard                     totals, matrix, offices (filters in the query)
    GET|HEAD  /dashboard/totals.json         the totals, as `mailer status --json` has them
    GET|HEAD  /dashboard/export.{xlsx,csv}   the filtered view's export (?what=all|call-sheet|…)
    GET|HEAD  /dashboard/review              the review queue
    GET|HEAD  /dashboard/office/{id}         an office's whole timeline, with buttons to mark
    POST      /dashboard/mark                the coordinator's mark for an office (not the
                                             read-only role's)

Every GET only reads. Every POST needs the form's CSRF token (signed for the session, or
for the login form's cookie: `mailer.web.guard.Forms`) and its own origin (`same_origin`).
Without `MAILER_DASHBOARD_PASSWORD_HASH` the dashboard is off: a page says how to turn it on.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from mailer.errors import MailerError
from mailer.replies.attendance import mark
from mailer.replies.statuses import ANSWERS, Attendance
from mailer.web.board import (
    MEDIA,
    board_values,
    canonical,
    export_bytes,
    key_of,
    kind_of,
    live_values,
    report_of,
    review_values,
    totals,
)
from mailer.web.guard import FORM_AGE, Forms, RateLimit, same_origin
from mailer.web.login import (
    COORDINATOR,
    LOGIN_COOKIE,
    SESSION_AGE,
    SESSION_COOKIE,
    VIEWER,
    Sessions,
    password_ok,
    role_of,
)
from mailer.web.snapshot import Board, Boards, LedgerAway
from mailer.web.timeline import office_values

if TYPE_CHECKING:
    from collections.abc import Mapping

    import jinja2

    from mailer.web.pages import Site

Guard = tuple[Forms, str | None, bool]  # the app's forms, its public origin, behind https
ROOT = "/dashboard"


def json_bytes(value: Any) -> bytes:
    """`value` as Starlette's JSONResponse writes it."""
    return bytes(JSONResponse(value).body)


HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; font-src 'self'; img-src 'self'; "
        "script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
}
FORM_KEY = "dashboard"  # what the dashboard's forms are signed for, with the session's id
LOGIN_KEY = "dashboard-login"
MAX_BODY = 8_192


class Dashboard:
    """The dashboard's routes over a `Site`, with the app's templates and guards."""

    def __init__(self, site: Site, templates: Mapping[str, jinja2.Template], guard: Guard) -> None:
        self.site = site
        self.templates = templates
        self.forms, self.public_origin, self.https = guard
        self.password_hash = site.password_hash
        self.sessions = Sessions(site.secret_key, site.password_hash + site.readonly_hash)
        self.logins = RateLimit(site.logins_per_address, site.post_window)
        self.boards = Boards(site.ledger, site.campaign)
        # A rendered view is kept with its board; each response puts its own form token
        # where this stands (a random string no page can otherwise contain).
        self._token_here = f"csrf-{secrets.token_hex(16)}"

    def routes(self) -> list[Route]:
        get = ["GET", "HEAD"]
        return [
            Route(f"{ROOT}/login", self.login_page, methods=get),
            Route(f"{ROOT}/login", self.login, methods=["POST"]),
            Route(f"{ROOT}/logout", self.logout, methods=["POST"]),
            Route(ROOT, self.board, methods=get),
            Route(f"{ROOT}/totals.json", self.totals, methods=get),
            Route(f"{ROOT}/live.json", self.live, methods=get),
            Route(f"{ROOT}/export.{{suffix}}", self.export, methods=get),
            Route(f"{ROOT}/review", self.review, methods=get),
            Route(f"{ROOT}/office/{{invitee_id}}", self.office, methods=get),
            Route(f"{ROOT}/mark", self.mark, methods=["POST"]),
        ]

    # --- responses ---------------------------------------------------------------------

    def html(self, name: str, values: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        page = self.templates[name].render(values)
        return HTMLResponse(page, status_code=status_code, headers=HEADERS)

    def _cookie(
        self, response: Response, name: str, value: str, age: int, request: Request
    ) -> None:
        # The session is Lax, so a link to the dashboard (the digest's) opens it logged in; a
        # cross-site POST still carries no session, and every form needs its CSRF token.
        response.set_cookie(
            name, value, max_age=age, path=ROOT, httponly=True,
            secure=request.url.scheme == "https" or self.https,
            samesite="lax" if name == SESSION_COOKIE else "strict",
        )  # fmt: skip

    def _session(self, request: Request) -> str | None:
        return self.sessions.read(request.cookies.get(SESSION_COOKIE))

    def _gate(self, request: Request) -> Response | str:
        """The session's id, or the response to give instead (off, or to the login)."""
        if not self.password_hash:
            return self.html("dashboard_off", {}, 503)
        session = self._session(request)
        if session is None:
            return RedirectResponse(f"{ROOT}/login", status_code=302, headers=HEADERS)
        return session

    def _posted(self, request: Request, key: str, nonce: str | None, field: object) -> bool:
        return same_origin(request, self.public_origin) and self.forms.check(
            key, nonce, str(field or "")
        )

    # --- login -------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        return self._login_form(request, {}, 200)

    def _login_form(self, request: Request, values: dict[str, Any], code: int) -> Response:
        if not self.password_hash:
            return self.html("dashboard_off", {}, 503)
        nonce, field = self.forms.issue(LOGIN_KEY)
        response = self.html(
            "dashboard_login", {"csrf": field, "login": True, "problem": "", **values}, code
        )
        self._cookie(response, LOGIN_COOKIE, nonce, FORM_AGE, request)
        return response

    async def login(self, request: Request) -> Response:
        if not self.password_hash:
            return self.html("dashboard_off", {}, 503)
        address = request.client.host if request.client else ""
        if not self.logins.allow(address):
            return self._login_form(request, {"problem": "rate"}, 429)
        if int(request.headers.get("content-length") or MAX_BODY + 1) > MAX_BODY:
            return self._login_form(request, {"problem": "form"}, 400)
        form = await request.form(max_files=0, max_fields=5)
        if not self._posted(
            request, LOGIN_KEY, request.cookies.get(LOGIN_COOKIE), form.get("csrf")
        ):
            return self._login_form(request, {"problem": "form"}, 403)
        given = str(form.get("password") or "")
        role = await run_in_threadpool(self._role, given)
        if role is None:
            return self._login_form(request, {"problem": "password"}, 401)
        _, cookie = self.sessions.start(role)
        response = RedirectResponse(ROOT, status_code=303, headers=HEADERS)
        self._cookie(response, SESSION_COOKIE, cookie, SESSION_AGE, request)
        response.delete_cookie(LOGIN_COOKIE, path=ROOT)
        return response

    def _role(self, password: str) -> str | None:
        if password_ok(self.password_hash, password):
            return COORDINATOR
        if self.site.readonly_hash and password_ok(self.site.readonly_hash, password):
            return VIEWER
        return None

    async def logout(self, request: Request) -> Response:
        gate = self._gate(request)
        if not isinstance(gate, str):
            return gate
        form = await request.form(max_files=0, max_fields=5)
        if not self._posted(request, FORM_KEY, gate, form.get("csrf")):
            return self.html("dashboard_problem", {"problem": "form"}, 403)
        self.sessions.end(gate)
        response = RedirectResponse(f"{ROOT}/login", status_code=303, headers=HEADERS)
        response.delete_cookie(SESSION_COOKIE, path=ROOT)
        return response

    # --- reading -----------------------------------------------------------------------

    def _board(self, query: Mapping[str, str]) -> Board:
        """The board of the message kind `query` names (`MailerError`: none such sent)."""
        first = self.boards.board()
        kind = kind_of(query, first.kinds)
        return first if kind == "invitation" else self.boards.board(kind)

    def _page(self, query: Mapping[str, str], key: str) -> str:
        board = self._board(query)

        def render() -> str:
            values = board_values(board, query)
            values.update(csrf=self._token_here, query=key, every=self.site.refresh_seconds)
            return self.templates["dashboard"].render(values)

        return board.keep("page", key, render)

    def _problem(self, exc: MailerError) -> HTMLResponse:
        if isinstance(exc, LedgerAway):
            return self.html("dashboard_problem", {"problem": "away", "text": str(exc)}, 503)
        return self.html("dashboard_problem", {"problem": "filter", "text": str(exc)}, 400)

    async def board(self, request: Request) -> Response:
        gate = self._gate(request)
        if not isinstance(gate, str):
            return gate
        query = canonical(request.query_params)
        try:
            page = await run_in_threadpool(self._page, query, key_of(query))
        except MailerError as exc:
            return self._problem(exc)
        page = page.replace(self._token_here, self.forms.issue(FORM_KEY, gate)[1])
        return HTMLResponse(page, headers=HEADERS)

    async def _read(self, request: Request, what: str, reading: Any) -> Response:
        """A JSON view of the board (`reading(board, query)`), for the page's script: made
        once per board and query."""
        gate = self._gate(request)
        if not isinstance(gate, str):
            return JSONResponse({"error": "login"}, status_code=401, headers=HEADERS)
        query = canonical(request.query_params)

        def read() -> bytes:
            board = self._board(query)
            return board.keep(what, key_of(query), lambda: json_bytes(reading(board, query)))

        try:
            found = await run_in_threadpool(read)
        except MailerError as exc:
            code = 503 if isinstance(exc, LedgerAway) else 400
            return JSONResponse({"error": str(exc)}, status_code=code, headers=HEADERS)
        return Response(found, media_type="application/json", headers=HEADERS)

    async def totals(self, request: Request) -> Response:
        return await self._read(
            request, "totals", lambda board, query: totals(report_of(board, query))
        )

    async def live(self, request: Request) -> Response:
        return await self._read(request, "live", live_values)

    async def export(self, request: Request) -> Response:
        gate = self._gate(request)
        if not isinstance(gate, str):
            return gate
        suffix = request.path_params["suffix"]
        what = request.query_params.get("what", "all")
        if suffix not in MEDIA or what not in ("all", "call-sheet", "attendees"):
            return self.html("dashboard_problem", {"problem": "filter", "text": "?"}, 404)
        query = canonical(request.query_params)
        try:
            report = await run_in_threadpool(lambda: report_of(self._board(query), query))
        except MailerError as exc:
            return self._problem(exc)
        data = await run_in_threadpool(export_bytes, report, what, suffix)
        headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{what}.{suffix}"'}
        return Response(data, media_type=MEDIA[suffix], headers=headers)

    async def review(self, request: Request) -> Response:
        gate = self._gate(request)
        if not isinstance(gate, str):
            return gate
        values = await run_in_threadpool(review_values, self.site.ledger)
        values.update(
            csrf=self.forms.issue(FORM_KEY, gate)[1],
            can_mark=role_of(gate) == COORDINATOR,
            marked=request.query_params.get("marked", "")[:64],
        )
        return self.html("dashboard_review", values)

    async def office(self, request: Request) -> Response:
        gate = self._gate(request)
        if not isinstance(gate, str):
            return gate
        invitee_id = request.path_params["invitee_id"][:64]
        try:
            values = await run_in_threadpool(
                office_values, self.site.ledger, self.site.campaign, invitee_id
            )
        except MailerError as exc:
            return self.html("dashboard_problem", {"problem": "filter", "text": str(exc)}, 404)
        values.update(csrf=self.forms.issue(FORM_KEY, gate)[1],
                      can_mark=role_of(gate) == COORDINATOR,
                      marked=request.query_params.get("marked", "")[:64])  # fmt: skip
        return self.html("dashboard_office", values)

    # --- marking -----------------------------------------------------------------------

    async def mark(self, request: Request) -> Response:
        gate = self._gate(request)
        if not isinstance(gate, str):
            return gate
        if int(request.headers.get("content-length") or MAX_BODY + 1) > MAX_BODY:
            return self.html("dashboard_problem", {"problem": "form"}, 400)
        form = await request.form(max_files=0, max_fields=10)
        if not self._posted(request, FORM_KEY, gate, form.get("csrf")):
            return self.html("dashboard_problem", {"problem": "form"}, 403)
        if role_of(gate) != COORDINATOR:
            return self.html("dashboard_problem", {"problem": "readonly"}, 403)
        invitee_id = str(form.get("invitee_id") or "").strip()[:64]
        choice = str(form.get("status") or "")
        if choice not in {a.value for a in ANSWERS}:
            return self.html("dashboard_problem", {"problem": "filter", "text": choice[:40]}, 422)
        reply = str(form.get("reply") or "")[:12]
        note = (
            f"marked on the dashboard (review of reply {reply})"
            if reply.isdigit()
            else "marked on the dashboard"
        )
        try:
            await run_in_threadpool(self._mark, invitee_id, Attendance(choice), note)
        except MailerError as exc:
            return self.html("dashboard_problem", {"problem": "filter", "text": str(exc)}, 422)
        back = f"office/{quote(invitee_id)}" if form.get("back") == "office" else "review"
        return RedirectResponse(
            f"{ROOT}/{back}?marked={quote(invitee_id)}", status_code=303, headers=HEADERS
        )

    def _mark(self, invitee_id: str, status_: Attendance, note: str) -> None:
        mark(self.site.ledger, invitee_id, status_, representative={}, note=note)
