"""The ledger on real SQLite and real PostgreSQL (docs/design.md §3)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from mailer.db import SCHEMA_HEAD, _alembic_config, open_database
from mailer.delivery.ledger import Claim, Ledger, Sending, Settled
from mailer.delivery.owners import new_owner
from mailer.errors import DatabaseError, LedgerError
from mailer.invitees.importing import import_contacts
from tests.conftest import CONTACTS, FakeClock

LEASE = timedelta(minutes=5)


def _sending(ledger: Ledger, claim: Claim, owner: str) -> bool:
    return ledger.step(owner, None, Sending(claim, ("x@x.example",), "127.0.0.1:25"), LEASE)


def _settle(
    ledger: Ledger, claim: Claim, owner: str, state: str, reply: str, after: timedelta | None = None
) -> None:
    ledger.step(owner, Settled(claim, state, reply, ledger.clock(), after), None, LEASE)


@pytest.fixture
def ledger(database_url: str, clock: FakeClock):  # type: ignore[no-untyped-def]
    engine = open_database(database_url)
    import_contacts(engine, CONTACTS)
    yield Ledger(engine, "egov-seminar-2559", clock)
    engine.dispose()


def _enqueue(ledger: Ledger, ids: list[str], kind: str = "invitation") -> int:
    return ledger.enqueue(
        ((i, f"{i}@x.example") for i in ids), kind, 0, lambda i: f"<{kind}.{i}@t>"
    )


IDS = ["TH-50-agri", "TH-50-prov", "TH-51-agri"]


@pytest.mark.slow
def test_enqueue_is_idempotent(ledger: Ledger) -> None:
    assert _enqueue(ledger, IDS) == 3
    assert _enqueue(ledger, IDS) == 0
    assert _enqueue(ledger, [*IDS, "TH-52-agri"]) == 1
    assert ledger.counts()["queued"] == 4
    assert _enqueue(ledger, IDS, kind="reminder:r1") == 3  # another kind is another row


@pytest.mark.slow
def test_a_claim_is_a_lease_that_others_cannot_take(ledger: Ledger, clock: FakeClock) -> None:
    _enqueue(ledger, IDS)
    first, second = new_owner(), new_owner()
    mine = ledger.claim(first, 2, LEASE)
    assert [c.invitee_id for c in mine] == ["TH-50-agri", "TH-50-prov"]
    theirs = ledger.claim(second, 10, LEASE)
    assert [c.invitee_id for c in theirs] == ["TH-51-agri"]
    assert ledger.claim(second, 10, LEASE) == []
    clock.advance(minutes=6)  # the first worker vanished: its lease runs out
    assert {c.invitee_id for c in ledger.claim(second, 10, LEASE)} == {
        "TH-50-agri",
        "TH-50-prov",
        "TH-51-agri",
    }


@pytest.mark.slow
def test_the_state_machine(ledger: Ledger, clock: FakeClock) -> None:
    _enqueue(ledger, IDS)
    owner = new_owner()
    a, b, c = ledger.claim(owner, 3, LEASE)
    for claim in (a, b, c):
        assert _sending(ledger, claim, owner)
    _settle(ledger, a, owner, "sent", "250 2.0.0 queued as 1")
    _settle(ledger, b, owner, "retry_wait", "451 4.7.1 try later", timedelta(minutes=2))
    _settle(ledger, c, owner, "failed", "550 5.1.1 unknown")
    assert {k: v for k, v in ledger.counts().items() if v} == {
        "sent": 1,
        "retry_wait": 1,
        "failed": 1,
    }
    assert ledger.claim(owner, 10, LEASE) == []  # the retry is not due yet
    clock.advance(minutes=3)
    (again,) = ledger.claim(owner, 10, LEASE)
    assert again.invitee_id == b.invitee_id
    assert again.attempts == 1


@pytest.mark.slow
def test_claims_take_due_retries_first_then_the_oldest_queued(
    ledger: Ledger, clock: FakeClock
) -> None:
    _enqueue(ledger, IDS)
    owner = new_owner()
    a, b, c = ledger.claim(owner, 3, LEASE)
    for claim, state in ((a, "sent"), (b, "retry_wait"), (c, "sent")):
        assert _sending(ledger, claim, owner)
        _settle(
            ledger, claim, owner, state, "451 later", timedelta(minutes=2) if claim is b else None
        )
    clock.advance(minutes=1)
    _enqueue(ledger, IDS, kind="reminder:r1")
    clock.advance(minutes=1)
    _enqueue(ledger, IDS[:1], kind="reminder:r2")
    clock.advance(minutes=1)  # b's retry is now due
    first = ledger.claim(owner, 2, LEASE)
    assert [(c.kind, c.invitee_id) for c in first] == [
        ("invitation", "TH-50-prov"),
        ("reminder:r1", "TH-50-agri"),
    ]
    rest = ledger.claim(new_owner(), 10, LEASE)
    assert [(c.kind, c.invitee_id) for c in rest] == [
        ("reminder:r1", "TH-50-prov"),
        ("reminder:r1", "TH-51-agri"),
        ("reminder:r2", "TH-50-agri"),
    ]


@pytest.mark.slow
def test_a_due_retry_goes_before_older_queued_rows(ledger: Ledger, clock: FakeClock) -> None:
    _enqueue(ledger, IDS, kind="reminder:r1")
    _enqueue(ledger, IDS[:1])
    owner = new_owner()
    claims = ledger.claim(owner, 10, LEASE)
    (invitation,) = [c for c in claims if c.kind == "invitation"]
    assert _sending(ledger, invitation, owner)
    _settle(ledger, invitation, owner, "retry_wait", "451 later", timedelta(minutes=2))
    assert ledger.release(owner) == 3
    clock.advance(minutes=3)
    assert [c.kind for c in ledger.claim(owner, 1, LEASE)] == ["invitation"]


@pytest.mark.slow
def test_a_worker_that_lost_its_lease_cannot_mark_the_row(ledger: Ledger, clock: FakeClock) -> None:
    _enqueue(ledger, IDS[:1])
    slow, fast = new_owner(), new_owner()
    (claim,) = ledger.claim(slow, 1, LEASE)
    clock.advance(minutes=6)
    (taken,) = ledger.claim(fast, 1, LEASE)
    assert not _sending(ledger, claim, slow)
    assert _sending(ledger, taken, fast)


@pytest.mark.slow
def test_release_gives_back_unsent_claims_only(ledger: Ledger) -> None:
    _enqueue(ledger, IDS)
    owner = new_owner()
    a, _b, _c = ledger.claim(owner, 3, LEASE)
    _sending(ledger, a, owner)
    assert ledger.release(owner) == 2
    assert [c.invitee_id for c in ledger.claim(new_owner(), 10, LEASE)] == IDS[1:]


@pytest.mark.slow
def test_rows_left_sending_by_a_dead_process_become_uncertain(
    ledger: Ledger, database_url: str
) -> None:
    _enqueue(ledger, IDS)
    # A real process claims and marks one row as sending, then dies without recording.
    script = (
        "import sys; from datetime import timedelta\n"
        "from mailer.db import open_database\nfrom mailer.delivery.ledger import Ledger, Sending\n"
        "from mailer.delivery.owners import new_owner\n"
        "ledger = Ledger(open_database(sys.argv[1]), 'egov-seminar-2559')\n"
        "owner = new_owner(); (claim,) = ledger.claim(owner, 1, timedelta(minutes=5))\n"
        "ledger.step(owner, None, Sending(claim, ('x@x.example',), 's'), timedelta(minutes=5))\n"
        "import os; os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, database_url], check=True, env=os.environ)
    assert ledger.counts()["sending"] == 1
    assert ledger.recover() == 1  # its lease has not run out, but its process is gone
    counts = ledger.counts()
    assert (counts["sending"], counts["uncertain"], counts["queued"]) == (0, 1, 2)
    assert ledger.recover() == 0


@pytest.mark.slow
def test_a_live_workers_sending_row_is_left_alone(ledger: Ledger) -> None:
    _enqueue(ledger, IDS[:1])
    owner = new_owner()
    (claim,) = ledger.claim(owner, 1, LEASE)
    _sending(ledger, claim, owner)
    assert ledger.recover() == 0


@pytest.mark.slow
def test_the_server_guard(ledger: Ledger) -> None:
    ledger.guard_server("127.0.0.1:8025", allow_new=False)
    ledger.guard_server("127.0.0.1:8025", allow_new=False)
    with pytest.raises(
        LedgerError,
        match=r"sent campaign 'egov-seminar-2559' through 127\.0\.0\.1:8025.*--new-server",
    ):
        ledger.guard_server("smtp.example.org:587", allow_new=False)
    ledger.guard_server("smtp.example.org:587", allow_new=True)
    assert ledger.campaign_state().smtp_server == "smtp.example.org:587"


def test_a_database_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    engine = create_engine(f"sqlite:///{other}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE accounts (id INTEGER)"))
    engine.dispose()
    with pytest.raises(
        DatabaseError,
        match=r"other\.db is not a mailer database: it already holds other tables \(accounts\)",
    ):
        open_database(f"sqlite:///{other}")


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("hello, this is text", encoding="utf-8")
    with pytest.raises(DatabaseError, match=r"notes\.db is not a SQLite database .*DATABASE_URL"):
        open_database(f"sqlite:///{notes}")
    assert notes.read_text(encoding="utf-8") == "hello, this is text"


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_sqlite_writers_take_the_write_lock_at_begin_and_readers_never_wait(
    tmp_path: Path,
) -> None:
    """A write transaction is BEGIN IMMEDIATE: it holds SQLite's write lock from its first
    statement, so a claim never fails half-way on a lock upgrade; a reader (`reader`) is a
    deferred BEGIN and reads while a writer holds the lock (WAL)."""
    import sqlite3

    from mailer.db import reader

    path = tmp_path / "m.db"
    engine = open_database(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT 1")  # nothing written yet, and still the lock is held
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("BEGIN IMMEDIATE")
        with reader(engine).connect() as looking:
            assert looking.execute(text("SELECT count(*) FROM delivery")).scalar() == 0
    other.execute("BEGIN IMMEDIATE")  # free once the writer committed
    other.execute("ROLLBACK")
    other.close()
    engine.dispose()


@pytest.mark.slow
def test_migrations_run_once_and_reopen_cleanly(database_url: str) -> None:
    open_database(database_url).dispose()
    engine = open_database(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
    engine.dispose()


def test_the_schema_head_is_the_newest_migration() -> None:
    """`SCHEMA_HEAD` lets a current database open without loading Alembic: it must name
    the newest migration, or a new migration would never run."""
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(_alembic_config()).get_current_head() == SCHEMA_HEAD


@pytest.mark.slow
def test_a_database_of_an_older_schema_is_upgraded_when_opened(database_url: str) -> None:
    engine = open_database(database_url)
    with engine.begin() as conn:  # back to how 0004 left it
        conn.execute(text("DROP TABLE letter_pdf"))  # 0009
        conn.execute(text("DROP INDEX uq_delivery_coordinator_once"))  # 0010
        for table in ("web_answer", "rsvp_visit", "rsvp_token"):  # 0011
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("DROP TABLE scheduler_state"))  # 0008
        conn.execute(text("DROP TABLE attendance_mark"))
        conn.execute(text("DROP TABLE inbound_message"))
        conn.execute(text("ALTER TABLE delivery DROP COLUMN delivered_to"))  # 0007
        conn.execute(text("ALTER TABLE delivery DROP COLUMN refused"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    engine.dispose()
    engine = open_database(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
        assert conn.execute(text("SELECT count(*) FROM attendance_mark")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM delivery WHERE refused = ''")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM scheduler_state")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM web_answer")).scalar() == 0
    indexes = {i["name"] for i in inspect(engine).get_indexes("delivery")}
    assert "uq_delivery_coordinator_once" in indexes  # 0010
    engine.dispose()


@pytest.mark.slow
def test_a_database_written_by_a_newer_mailer_is_refused(database_url: str) -> None:
    engine = open_database(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(DatabaseError, match=r"written by a newer mailer \(schema 0099\)"):
        open_database(database_url)


def test_an_unreachable_postgres_is_explained() -> None:
    with pytest.raises(
        DatabaseError,
        match=r"cannot open the database postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:1/x",
    ):
        open_database("postgresql+psycopg://u:secret@127.0.0.1:1/x")
