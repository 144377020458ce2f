"""The tables reply tracking reads and writes, as SQLAlchemy Core handles (one home for them):
`inbound_message` (every message synced, raw, with its reading: written by `sync`),
`attendance_mark` (the coordinator's decisions: written by `mark`), `web_answer` (the
offices' answers on their page: written by `mailer.replies.online`), and, read only, the
invitees (their addresses and ids) and the event versions (which SEQUENCE is current)."""

from __future__ import annotations

from sqlalchemy import Table

from mailer.models import AttendanceMark, EventVersion, InboundMessage, Invitee, WebAnswer

MESSAGES: Table = InboundMessage.__table__  # type: ignore[attr-defined]
M = MESSAGES.c
MARKS: Table = AttendanceMark.__table__  # type: ignore[attr-defined]
K = MARKS.c
INVITEES: Table = Invitee.__table__  # type: ignore[attr-defined]
I = INVITEES.c  # noqa: E741
WEB_ANSWERS: Table = WebAnswer.__table__  # type: ignore[attr-defined]
W = WEB_ANSWERS.c
EVENT_VERSIONS: Table = EventVersion.__table__  # type: ignore[attr-defined]
V = EVENT_VERSIONS.c
