"""Alembic environment: run by `mailer.db.migrate` with a live connection."""

from alembic import context
from sqlmodel import SQLModel

import mailer.models  # noqa: F401 - the tables register themselves with SQLModel.metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
