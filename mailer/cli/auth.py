"""`mailer auth login|logout|status`: a user's one-time OAuth2 sign-in (delegated), kept in
MAILER_TOKEN_FILE for SMTP_AUTH / IMAP_AUTH = microsoft or google without app credentials."""

from __future__ import annotations

import io
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from mailer.cli.app import Group, app, err, out, workspace
from mailer.errors import MailerError

if TYPE_CHECKING:
    from mailer.oauth import SignIn

auth_app = typer.Typer(
    cls=Group,
    rich_markup_mode="markdown",
    no_args_is_help=True,
    help="Sign in as the mailbox's user (OAuth2, once) for SMTP_AUTH / IMAP_AUTH = microsoft "
    "or google without app credentials.",
)
app.add_typer(auth_app, name="auth")


class Provider(StrEnum):
    microsoft = "microsoft"
    google = "google"


def _signin(ctx: typer.Context) -> SignIn:
    signin = workspace(ctx).settings.signin
    if signin is None:  # (load_settings always reads it)
        raise MailerError("no sign-in settings were read")
    return signin


@auth_app.command("login")
def login(
    ctx: typer.Context,
    provider: Annotated[Provider, typer.Argument(help="microsoft or google.")],
    no_browser: Annotated[
        bool,
        typer.Option("--no-browser", help="google: print the address, do not open a browser."),
    ] = False,
    port: Annotated[
        int,
        typer.Option(
            help="google: the loopback port the browser comes back to (0: any free one; "
            "name one to forward it with ssh -L).",
            min=0,
            max=65535,
        ),
    ] = 0,
) -> None:
    """Sign in once as the mailbox's user and keep the refresh token in MAILER_TOKEN_FILE
    (mode 600). microsoft: shows a code to enter at Microsoft's sign-in page, on any
    device. google: opens Google's sign-in page (or prints it, with --no-browser), which
    comes back to this machine.

    Example: mailer auth login microsoft, or mailer auth login google --no-browser
    """
    from mailer.oauth_signin import login_google, login_microsoft

    signin = _signin(ctx)
    settings = signin.settings(provider.value)
    if isinstance(sys.stdout, io.TextIOWrapper):  # the address must show while we wait
        sys.stdout.reconfigure(line_buffering=True)
    if provider is Provider.microsoft:
        who = login_microsoft(settings, out.print)
        out.print(f"Signed in to Microsoft 365 as {who or 'the user'}.")
        _warn_if_not_the_mailbox(ctx, who)
    else:
        login_google(settings, open_browser=not no_browser, port=port)
        out.print("Signed in to Google.")
    out.print(
        f"The refresh token is kept in {signin.token_file} (mode 600). With "
        f"SMTP_AUTH={provider.value} and IMAP_AUTH={provider.value} mailer now signs in as "
        "that user; `mailer check --auth` tries it."
    )


def _warn_if_not_the_mailbox(ctx: typer.Context, who: str) -> None:
    settings = workspace(ctx).settings
    for name, username, oauth in (
        ("SMTP_USERNAME", settings.smtp.username, settings.smtp.oauth),
        ("IMAP_USERNAME", settings.imap.username, settings.imap.oauth),
    ):
        if oauth is not None and oauth.delegated and who and username.lower() != who.lower():
            err.print(f"Warning: {name}={username!r}, but {who!r} signed in; XOAUTH2 needs both")


@auth_app.command("logout")
def logout(
    ctx: typer.Context,
    provider: Annotated[Provider, typer.Argument(help="microsoft or google.")],
) -> None:
    """Forget a sign-in: its refresh token is removed from MAILER_TOKEN_FILE (the file
    goes with the last one). At the provider the grant stays until revoked there.

    Example: mailer auth logout microsoft
    """
    from mailer.oauth_signin import logout as forget

    signin = _signin(ctx)
    if forget(signin.token_file, provider.value):
        out.print(f"Signed out of {provider.value}: removed from {signin.token_file}.")
    else:
        out.print(f"Nobody was signed in to {provider.value} in {signin.token_file}.")


@auth_app.command("status")
def status(ctx: typer.Context) -> None:
    """Who is signed in, and until when the access token lasts (never the token).

    Example: mailer auth status
    """
    from mailer.oauth_signin import status as signed_in

    for line in signed_in(_signin(ctx)):
        out.print(line)
