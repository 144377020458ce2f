"""Per-address outcome of a delivery: the addresses the server accepted (`delivered_to`)
and those it refused for good (`refused`, with its reply). An office with several addresses
whose server took one and deferred another is retried for the deferred one alone.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("delivered_to", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("refused", sa.Text(), nullable=False, server_default=""))
