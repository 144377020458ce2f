"""The offices' own page: `web` serves it; `rsvp revoke` and `rsvp link` manage the links."""

from __future__ import annotations

from typing import Annotated

import typer

from mailer.cli.app import Group, app, err, out, workspace
from mailer.errors import MailerError

rsvp_app = typer.Typer(
    cls=Group,
    rich_markup_mode="markdown",
    no_args_is_help=True,
    help="The offices' personal links to their answer page.",
)
app.add_typer(rsvp_app, name="rsvp")
web_app = typer.Typer(
    cls=Group,
    rich_markup_mode="markdown",
    invoke_without_command=True,
    help="Serve the offices' answer pages and the coordinator's dashboard.",
)
app.add_typer(web_app, name="web")


@web_app.callback()
def web_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the offices' answer pages (the links in their invitations) and the
    coordinator's dashboard (/dashboard, with MAILER_DASHBOARD_PASSWORD_HASH), on loopback by
    default: put an https reverse proxy in front and set MAILER_PUBLIC_URL to its address.

    Example: mailer web --port 8000
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from mailer.hosts import is_loopback_host
    from mailer.web.app import create_app, server_options
    from mailer.web.pages import Site

    ws = workspace(ctx)
    web = ws.settings.web
    if not web.secret_key:
        raise MailerError(
            "MAILER_SECRET_KEY is empty: the links cannot be checked. Set it (and "
            "MAILER_PUBLIC_URL) in .env; see .env.example"
        )
    if not web.links:
        err.print("Warning: MAILER_PUBLIC_URL is empty, so no message carries a link yet.")
    if not is_loopback_host(host):
        err.print(f"Warning: listening on {host}: serve it to the offices only behind https.")
    site = Site(
        ws.ledger(), ws.campaign, ws.settings.templates_dir, web.secret_key.value,
        password_hash=web.dashboard_password_hash.value,
        readonly_hash=web.dashboard_readonly_hash.value,
    )  # fmt: skip
    out.print(f"Serving the answer pages on http://{host}:{port}/ (Ctrl-C stops).")
    if web.dashboard_password_hash:
        out.print(f"The coordinator's dashboard: http://{host}:{port}/dashboard")
    else:
        out.print(
            "The dashboard is off: set MAILER_DASHBOARD_PASSWORD_HASH (mailer web hash-password)."
        )
    uvicorn.run(
        create_app(site, web.public_url),
        host=host,
        port=port,
        **server_options(web.trusted_proxies),
    )


@web_app.command("hash-password")
def hash_password_cmd() -> None:
    """Print the argon2 hash of a password typed twice (never shown) for
    MAILER_DASHBOARD_PASSWORD_HASH in .env: the dashboard's login.

    Example: mailer web hash-password
    """
    from mailer.web.login import hash_password

    password = typer.prompt("Dashboard password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        raise MailerError("the password is shorter than 10 characters; choose a longer one")
    out.print(hash_password(password), markup=False, highlight=False, soft_wrap=True)
    err.print("Put it in .env, in single quotes: MAILER_DASHBOARD_PASSWORD_HASH='…'")


def _link(ctx: typer.Context, invitee_id: str) -> str | None:
    from mailer.web.links import RsvpLinks

    ws = workspace(ctx)
    if not ws.settings.web.links:
        return None
    return RsvpLinks(ws.settings.web, ws.ledger())(invitee_id)


@rsvp_app.command("revoke")
def rsvp_revoke(
    ctx: typer.Context, invitee_id: Annotated[str, typer.Argument(help="e.g. TH-50-agri")]
) -> None:
    """Stop every link the office was sent (a forwarded link, say); its later messages
    carry a new one.

    Example: mailer rsvp revoke TH-50-agri
    """
    from mailer.web.store import revoke

    version = revoke(workspace(ctx).ledger(), invitee_id)
    out.print(f"{invitee_id}: the links sent so far no longer open (link version {version} now).")
    link = _link(ctx, invitee_id)
    if link is None:
        out.print("Links are off (MAILER_PUBLIC_URL is empty): no message carries one.")
        return
    out.print(
        "Its next reminder or update carries the new link. To resend it now, send the office "
        f"this link yourself (or read it out by phone): {link}\n"
        f"`mailer rsvp link {invitee_id}` prints it again."
    )


@rsvp_app.command("link")
def rsvp_link(
    ctx: typer.Context, invitee_id: Annotated[str, typer.Argument(help="e.g. TH-50-agri")]
) -> None:
    """Print the office's current personal link.

    Example: mailer rsvp link TH-50-agri
    """
    from mailer.web.store import known_office

    known_office(workspace(ctx).ledger(), invitee_id)
    link = _link(ctx, invitee_id)
    if link is None:
        raise MailerError("links are off: set MAILER_PUBLIC_URL and MAILER_SECRET_KEY")
    out.print(link)
