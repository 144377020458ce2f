"""`mailer`: the command line. Importing the submodules registers their commands."""

from mailer.cli import auth, commands, ledger, replying, scheduling, sending, viewing, web
from mailer.cli.app import app


def main() -> None:
    app()


__all__ = [
    "app",
    "auth",
    "commands",
    "ledger",
    "main",
    "replying",
    "scheduling",
    "sending",
    "viewing",
    "web",
]
