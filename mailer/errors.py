"""Domain errors. Each message says where, what, and how to fix it.

The CLI turns any `MailerError` into `Error: <message>` and exit code 1, in one place
(`mailer.cli.app.Group.invoke`). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class MailerError(Exception):
    """A problem the user can fix; the message tells them how."""


def _listed(problems: list[str]) -> str:
    """Every problem on its own line, as a bullet."""
    return "\n".join(f"  - {p}" for p in problems)


class SettingsError(MailerError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"the settings have {len(problems)} problem(s):\n{_listed(problems)}")


class CampaignError(MailerError):
    def __init__(self, path: object, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(
            f"{path}: the campaign file has {len(problems)} problem(s):\n{_listed(problems)}"
        )


class ContactsError(MailerError):
    """The invitee list could not be imported; nothing was written."""


class TemplateProblem(MailerError):
    """A template failed to load or render."""


class MessageProblem(MailerError):
    """One office's message cannot be built (an address no header can carry)."""


class DatabaseError(MailerError):
    """The database is missing, locked, or not a mailer database."""


class TransportError(MailerError):
    """The SMTP server cannot be used at all (unreachable, TLS, authentication)."""


class LedgerError(MailerError):
    """A ledger operation was refused (e.g. a different SMTP server than before)."""


def cut(value: str, limit: int = 60, *, flat: bool = False) -> str:
    """A value from data as a message may show it: whole if short, else its first `limit`
    characters and its length, so a hostile field is never printed back whole. `flat`: runs
    of white space (line breaks included) become one space first."""
    if flat:
        value = " ".join(value.split())
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value):,} characters)"


def some(names: Iterable[str], shown: int = 5) -> str:
    """The first few names, and how many more (a list of 100,000 is not a message)."""
    names = list(names)
    more = f" and {len(names) - shown:,} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
