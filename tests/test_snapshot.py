"""The dashboard's kept board (mailer/web/snapshot.py), on real SQLite and PostgreSQL: read
once per change, whoever commits it (here another process: `mailer mark`), and never waited
on longer than `wait` while a read is slow."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from mailer.invitees.importing import import_contacts
from mailer.replies.statuses import Attendance
from mailer.web.snapshot import Board, Boards, Changes, LedgerAway
from tests.conftest import CONTACTS, cli_env


def _mark(env: dict[str, str], office: str, status: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mailer", "mark", office, status],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def _status(board: Board, office: str) -> Attendance:
    return next(i.attendance for i in board.report.invitees if i.invitee_id == office)


@pytest.fixture
def seeded(make_ws: Any, database_url: str, tmp_path: Path) -> tuple[Any, dict[str, str]]:
    ws = make_ws(DATABASE_URL=database_url)
    import_contacts(ws.engine, CONTACTS)
    return ws, cli_env(tmp_path, DATABASE_URL=database_url)


def test_a_board_is_read_once_per_change_whoever_commits_it(
    seeded: tuple[Any, dict[str, str]],
) -> None:
    ws, env = seeded
    boards = Boards(ws.ledger(), ws.campaign)
    try:
        first = boards.board()
        assert boards.board() is first  # nothing committed: the same board, not read again
        assert _status(first, "TH-50-agri") == Attendance.no_reply
        _mark(env, "TH-50-agri", "declined")  # another process commits
        after = boards.board()
        assert after is not first
        assert _status(after, "TH-50-agri") == Attendance.declined
        assert boards.board() is after
    finally:
        boards.close()


class _SlowBoards(Boards):
    """Boards whose reads wait until the test lets them go (a read of 100,000 offices)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.go = threading.Event()
        self.go.set()

    def _read_board(self, kind: str, stamp: object) -> Board:
        assert self.go.wait(timeout=30)
        return super()._read_board(kind, stamp)


def test_a_slow_read_serves_the_kept_board_after_wait_then_the_new_one(
    seeded: tuple[Any, dict[str, str]],
) -> None:
    ws, env = seeded
    boards = _SlowBoards(ws.ledger(), ws.campaign, wait=0.3, glance=0.05)
    try:
        first = boards.board()
        boards.go.clear()
        _mark(env, "TH-11-prov", "accepted")
        start = time.monotonic()
        assert boards.board() is first  # the new read is held: the kept one, after `wait`
        assert 0.3 <= time.monotonic() - start < 5
        assert boards.board() is first  # the same read, still under way: not another one
        boards.go.set()
        fresh = boards.board()
        assert _status(fresh, "TH-11-prov") == Attendance.accepted
        assert fresh.read_at >= first.read_at
    finally:
        boards.go.set()
        boards.close()


def test_once_a_read_was_slow_a_request_only_glances_for_the_next(
    seeded: tuple[Any, dict[str, str]],
) -> None:
    ws, env = seeded
    boards = _SlowBoards(ws.ledger(), ws.campaign, wait=0.3, glance=0.05)
    try:
        boards.board()
        boards.go.clear()
        _mark(env, "TH-11-prov", "accepted")
        threading.Timer(0.6, boards.go.set).start()  # this read takes 0.6 s: slow
        slow = boards.board()  # waited 0.3 s, got the kept board
        boards.board()  # waits for nothing new... until the slow read lands
        deadline = time.monotonic() + 10
        while _status(boards.board(), "TH-11-prov") != Attendance.accepted:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        boards.go.clear()
        _mark(env, "TH-11-agri", "declined")
        start = time.monotonic()
        kept = boards.board()  # the last read was slow: only a glance (0.05 s) this time
        assert time.monotonic() - start < 0.25
        assert _status(kept, "TH-11-agri") == Attendance.no_reply
        assert kept is not slow
    finally:
        boards.go.set()
        boards.close()


class _FailingBoards(Boards):
    """Boards whose reads fail once `fail` is set (the database away mid-read)."""

    fail = False

    def _read_board(self, kind: str, stamp: object) -> Board:
        if self.fail:
            raise OperationalError("SELECT …", {}, Exception("disk I/O error"))
        return super()._read_board(kind, stamp)


def test_a_failed_read_serves_the_board_read_last_and_says_so_once(
    seeded: tuple[Any, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    ws, env = seeded
    boards = _FailingBoards(ws.ledger(), ws.campaign)
    try:
        first = boards.board()
        boards.fail = True
        _mark(env, "TH-11-prov", "accepted")
        with caplog.at_level(logging.WARNING, logger="mailer.web.snapshot"):
            assert boards.board() is first
            _mark(env, "TH-11-agri", "accepted")
            assert boards.board() is first
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1, said  # once per failing spell
        assert "OperationalError" in said[0]
        assert "SELECT" not in said[0]
        boards.fail = False
        assert _status(boards.board(), "TH-11-prov") == Attendance.accepted
    finally:
        boards.close()


def test_no_board_and_a_failed_read_is_a_clear_error(
    seeded: tuple[Any, dict[str, str]],
) -> None:
    ws, _ = seeded
    boards = _FailingBoards(ws.ledger(), ws.campaign)
    boards.fail = True
    try:
        with pytest.raises(LedgerAway, match="cannot be read just now"):
            boards.board()
    finally:
        boards.close()


def test_a_broken_stamp_connection_is_replaced_and_never_repeats_a_stamp(
    make_ws: Any,
) -> None:
    ws = make_ws()
    changes = Changes(ws.ledger().reads)
    try:
        first = changes.stamp()
        assert changes.stamp() == first  # nothing committed
        changes._connection.dbapi_connection.close()  # the kept connection breaks underneath
        with pytest.raises(sqlite3.ProgrammingError):
            changes.stamp()
        again = changes.stamp()  # a new connection: its counter starts anew, so must the stamp
        assert again != first
        assert changes.stamp() == again
    finally:
        changes.close()
