"""`mailer`: the command line. Importing the submodules registers their commands."""

from mailer.cli import commands, ledger, scheduling, sending
from mailer.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "commands", "ledger", "main", "scheduling", "sending"]
