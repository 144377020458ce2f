"""The two shapes every settings reader shares: `Secret`, a value that never shows itself,
and `Values`, how `mailer.settings` hands the raw values to the readers that live beside what
they configure (DKIM in `mailer.delivery.dkim`, OAuth2 in `mailer.oauth`, the web in
`mailer.web.settings`). No imports: the command line's help loads it for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Secret:
    """A value that never shows itself in logs, reprs or tracebacks."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('********')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


class Values(Protocol):
    """How `mailer.settings` hands its raw values to the readers that live beside what they
    configure (`_Values`): each adds its problems to `problems`."""

    problems: list[str]

    def raw(self, name: str) -> str: ...

    def text(self, name: str, default: str) -> str: ...
