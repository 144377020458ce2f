"""The database: engine, SQLite pragmas, and migrations run automatically on first use.

SQLite (the embedded default) runs in WAL mode and every transaction starts with
`BEGIN IMMEDIATE`, so a ledger claim never fails half-way on a lock upgrade. Another
database is chosen with `DATABASE_URL` (PostgreSQL via psycopg).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Dialect, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.exc import DatabaseError as SADatabaseError
from sqlmodel import Session

from mailer.errors import DatabaseError
from mailer.models import UTCDateTime
from mailer.redact import hide_secrets, shown_url

if TYPE_CHECKING:
    from alembic.config import Config

_OUR_TABLES = {"invitee", "campaign_state", "delivery"}
# The newest migration in mailer/migrations/versions (a test keeps the two in step). A
# database already there is opened without loading Alembic at all (~80 ms a command).
SCHEMA_HEAD = "0011"
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return config


def _sqlite_file(url: str) -> Path | None:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # their words may quote the password: not chained
        raise DatabaseError(
            f"{shown_url(url)} is not a database URL; "
            "e.g. DATABASE_URL=sqlite:///var/mailer.db or postgresql://user@127.0.0.1:5432/mailer"
        ) from None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


READ_ONLY = "mailer_read_only"


def _begin(connection: Any) -> None:
    """Every write transaction on SQLite is `BEGIN IMMEDIATE`: it takes the write lock at
    the start, so a ledger claim never fails half-way on a lock upgrade; writers queue on
    SQLite's busy handler (`busy_timeout`). Read-only transactions (`reader`) are a plain
    deferred BEGIN: WAL readers never wait for writers."""
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def open_database(url: str) -> Engine:
    """Open (creating if needed) and migrate the database at `url`.

    Refuses, with a clear message, a file that is not SQLite or a database that holds
    tables but not ours.
    """
    path = _sqlite_file(url)
    shown = shown_url(url)
    if path is not None:
        _check_sqlite_file(path)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _begin)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    # The driver's words go into the message with any password masked, and the driver's
    # exception is not chained: its text, or its connection arguments, may hold the password.
    try:
        if _check_ours(engine, shown) != SCHEMA_HEAD:
            migrate(engine)
    except OperationalError as exc:
        engine.dispose()
        raise DatabaseError(
            f"cannot open the database {shown}: {hide_secrets(str(exc.orig), url)}. "
            "Check DATABASE_URL and that the server is running."
        ) from None
    except SADatabaseError as exc:
        engine.dispose()
        raise DatabaseError(
            f"the database {path or shown} cannot be used: {hide_secrets(str(exc.orig), url)}"
        ) from None
    except DatabaseError:
        engine.dispose()
        raise
    return engine


def _check_sqlite_file(path: Path) -> None:
    """Refuses a path that is not a SQLite file (or cannot become one) before SQLite sees it."""
    try:
        if path.exists():
            with path.open("rb") as handle:
                head = handle.read(16)
            if head and head != _SQLITE_MAGIC:
                raise DatabaseError(
                    f"{path} is not a SQLite database (it starts with {head[:8]!r}). "
                    "Point DATABASE_URL at another file, e.g. sqlite:///var/mailer.db"
                )
        elif (
            folder := next((p for p in path.parents if p.exists()), None)
        ) and not folder.is_dir():
            raise DatabaseError(
                f"cannot use {path} as the SQLite database: {folder} is a file, not a folder. "
                "Point DATABASE_URL at another file, e.g. sqlite:///var/mailer.db"
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a folder, no permission, a file where a folder should be
        raise DatabaseError(
            f"cannot use {path} as the SQLite database ({exc.strerror}). "
            "Point DATABASE_URL at a file you may write, e.g. sqlite:///var/mailer.db"
        ) from None


def _check_ours(engine: Engine, shown: str) -> str | None:
    """The schema revision of a database of ours (None when it is empty); refuses another.
    `shown` is the URL as messages may show it (no password)."""
    tables = set(inspect(engine).get_table_names())
    if not tables:
        return None
    if "alembic_version" not in tables or not _OUR_TABLES & tables:
        others = ", ".join(sorted(tables)[:5])
        raise DatabaseError(
            f"{shown} is not a mailer database: it already holds other tables ({others}). "
            "Point DATABASE_URL at a new or empty database."
        )
    with reader(engine).connect() as conn:
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if current is None or current == SCHEMA_HEAD:
        return current
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        known = ScriptDirectory.from_config(_alembic_config()).get_revision(current) is not None
    except CommandError:  # "Can't locate revision identified by …"
        known = False
    if not known:
        raise DatabaseError(
            f"{shown} was written by a newer mailer (schema {current}); upgrade mailer first."
        )
    return str(current)


def migrate(engine: Engine) -> None:
    from alembic import command

    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


def reader(engine: Engine) -> Engine:
    """The same engine for read-only work: on SQLite a plain (deferred) BEGIN, so readers
    never queue behind writers."""
    return engine.execution_options(**{READ_ONLY: True})


class Prepared:
    """A statement compiled once for the engine's dialect and run on the DBAPI cursor,
    inside a transaction begun through SQLAlchemy (so BEGIN IMMEDIATE applies as
    everywhere else).

    The per-message hot path then skips SQLAlchemy's per-call cache lookup and execution
    set-up; with the connection kept open (as `Ledger.stepping` does) one step costs well under
    half (measured on SQLite: ~146 µs → ~70 µs). Datetimes go through `UTCDateTime`'s own
    bind processor, so they are stored exactly as every other statement stores them."""

    def __init__(self, sql: str, dialect: Dialect) -> None:
        compiled = text(sql).compile(dialect=dialect)
        self.sql = str(compiled)
        self.order = compiled.positiontup if compiled.positional else None
        when = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        assert when is not None  # a TypeDecorator with process_bind_param always has one
        self._when = when

    def __call__(self, conn: Connection, params: dict[str, Any]) -> int:
        """Run it in `conn`'s current transaction; returns the number of rows changed."""
        values = {k: self._when(v) if isinstance(v, datetime) else v for k, v in params.items()}
        args = values if self.order is None else tuple(values[name] for name in self.order)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, args)
            return int(cursor.rowcount)
        finally:
            cursor.close()
