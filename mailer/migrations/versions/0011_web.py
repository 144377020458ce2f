"""The invitee's page (mailer/web): each office's link version, "link opened" visits, and
the answers given on the page.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rsvp_token",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("invitee_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "rsvp_visit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("invitee_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("what", sa.String(16), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_rsvp_visit_invitee", "rsvp_visit", ["campaign_id", "invitee_id"])
    op.create_table(
        "web_answer",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("invitee_id", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("representative", sa.Text(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("campaign_id", "invitee_id", "number", name="uq_web_answer_number"),
    )
