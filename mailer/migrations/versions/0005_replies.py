"""Incoming messages and the coordinator's attendance marks.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_message",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("source_key", sa.String(255), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("invitee_id", sa.String(64), nullable=True),
        sa.Column("matched_by", sa.String(16), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=True),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("representative", sa.Text(), nullable=False),
        sa.UniqueConstraint("source", "source_key", name="uq_inbound_once"),
    )
    op.create_index("ix_inbound_invitee", "inbound_message", ["invitee_id"])
    op.create_table(
        "attendance_mark",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("invitee_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("representative", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("marked_at", UTCDateTime(), nullable=False),
    )
