"""The command line: each command parses its options, calls one library function and
prints the report it returns. Domain errors become `Error: …` and exit code 1 here, in
`Group.invoke`, and nowhere else; bad flags exit 2."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from mailer.errors import MailerError

if TYPE_CHECKING:
    from mailer.workspace import Workspace

out = Console(highlight=False, soft_wrap=True, markup=False)  # data is never markup
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def flag(console: Console, mark: str, style: str, text: str) -> None:
    """A coloured mark before text from data (addresses, replies, Thai names): the text is
    printed as it is, never read as Rich markup."""
    console.print(Text.assemble((mark, style), " ", text))


def emit_json(data: object) -> None:
    """Machine-readable output, written as it is: indented JSON, UTF-8 Thai as it is, no
    colours (Rich's JSON printer highlights every token: 1.1 s for `status --json`)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


class Group(TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MailerError as exc:
            err.print(f"Error: {exc}", markup=False)
            raise typer.Exit(1) from exc
        finally:
            close = getattr(ctx.obj, "close", None)  # the Workspace, when one was made
            if close is not None:
                close()


app = typer.Typer(
    cls=Group,
    # Help read as Markdown: a docstring's paragraphs are wrapped to the terminal (Rich
    # markup kept each line break, shown as a hard break in the list of commands).
    rich_markup_mode="markdown",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Thai seminar invitations with real calendar invites, a delivery ledger, "
    "reminders and reply tracking. Settings come from the environment and .env.",
)
send_app = typer.Typer(
    cls=Group, rich_markup_mode="markdown", no_args_is_help=True, help="Send a round of messages."
)
app.add_typer(send_app, name="send")


@app.callback()
def _main(ctx: typer.Context) -> None:
    if ctx.resilient_parsing:
        return
    from mailer.settings import load_settings
    from mailer.workspace import Workspace

    settings = load_settings(os.environ)
    for warning in settings.warnings:
        err.print(f"Warning: {warning}")
    ctx.obj = Workspace(settings)


def workspace(ctx: typer.Context) -> Workspace:
    from mailer.workspace import Workspace

    ws = ctx.find_root().obj
    assert isinstance(ws, Workspace)
    return ws
