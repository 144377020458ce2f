"""The tables reply tracking reads and writes, as SQLAlchemy Core handles (one home for them):
`inbound_message` (every message synced, raw, with its reading: written by `sync`),
`attendance_mark` (the coordinator's decisions: written by `mark`), and the invitees
(read only: their addresses and ids)."""

from __future__ import annotations

from sqlalchemy import Table

from mailer.models import AttendanceMark, InboundMessage, Invitee

MESSAGES: Table = InboundMessage.__table__  # type: ignore[attr-defined]
M = MESSAGES.c
MARKS: Table = AttendanceMark.__table__  # type: ignore[attr-defined]
K = MARKS.c
INVITEES: Table = Invitee.__table__  # type: ignore[attr-defined]
I = INVITEES.c  # noqa: E741
