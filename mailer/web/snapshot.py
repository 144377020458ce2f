"""The dashboard's picture of the ledger, read once per change and kept in memory.

Reading every office (`mailer.views.report.status`) takes about 25 µs an office: 15 ms for
532, 2.5 s for 100,000 (`python -m bench.web`). The dashboard and its polling script ask
far more often than the ledger changes, so `Boards` keeps, per message kind, the last
`Board` read and a stamp of the database it was read at, and every request first asks the
database whether anything was committed since (`Changes.stamp`, a fraction of a
millisecond):

- nothing committed: the kept board is served (and, per filtered view, its rendered page);
- something committed: one thread reads a new board, and the request waits for it up to
  `wait` (0.5) seconds when the last read of it took no longer than that (at 532 offices it
  takes about 15 ms, so the view is always current), else only `glance` seconds: at
  100,000 offices a request gets the board it had, marked with the time it was read, and
  the next one (or the page's own polling) gets the new one. No request waits on a full
  read but the very first, and `Boards.warm` starts that one when the server starts.

The stamp is read *before* the board, so a commit during the read is seen by the next
request. SQLite: `PRAGMA data_version` on a connection kept for it, which changes whenever
another connection (any process's) commits. PostgreSQL: `pg_current_snapshot()`, which
changes whenever any transaction of the server ends, in any of its databases (a server
shared with busy databases makes boards be read more often than needed, off the request
path once a read is known to be slow; it never misses a change).

A read that fails (the database away) leaves the last board shown, with its time, and
says so once in the log; with no board yet, the dashboard answers 503 (`LedgerAway`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import text

from mailer.errors import MailerError
from mailer.views.report import StatusReport, status
from mailer.web.board import Opened, opened, sent_kinds

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Engine

    from mailer.campaign import Campaign
    from mailer.delivery.ledger import Ledger

log = logging.getLogger(__name__)
KEPT = 32  # views and rendered pages kept per board (filters × pages)
T = TypeVar("T")


@dataclass
class Board:
    """Every office as `mailer status` reads it for one message kind, its links' opens, the
    kinds sent so far, and when and at which database stamp it was read. What is made of
    it (a filtered view, a rendered page) is kept beside it and goes with it."""

    stamp: object
    read_at: datetime
    report: StatusReport
    opens: dict[str, Opened]
    kinds: list[str]
    kept: dict[tuple[str, str], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def keep(self, what: str, key: str, make: Callable[[], T]) -> T:
        """What `make()` gives for (`what`, `key`) of this board, made once (the oldest of
        `KEPT` is let go). Two threads may both make it; one is kept."""
        with self._lock:
            found = self.kept.get((what, key))
        if found is None:
            found = make()
            with self._lock:
                while len(self.kept) >= KEPT:
                    self.kept.pop(next(iter(self.kept)))
                found = self.kept.setdefault((what, key), found)
        return cast("T", found)


class LedgerAway(MailerError):
    """The ledger cannot be read and no board was read before."""


class Changes:
    """A stamp of the database that differs once anything was committed since."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self._lock = threading.Lock()
        self._connection: Any = None  # SQLite: the connection whose counter is read
        self._opened = 0  # how many it has been: a new one's counter starts anew

    def stamp(self) -> object:
        if not self.sqlite:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT pg_current_snapshot()::text")).scalar_one()
        with self._lock:  # one connection, its own counter: never two threads at once
            if self._connection is None:
                self._connection = self.engine.raw_connection()
                self._opened += 1
            try:
                cursor = self._connection.cursor()
                try:
                    cursor.execute("PRAGMA data_version")
                    return (self._opened, cursor.fetchone()[0])
                finally:
                    cursor.close()
            except Exception:
                with contextlib.suppress(Exception):
                    self._connection.close()  # a new one next time, not this broken one
                self._connection = None
                raise

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class Boards:
    """The kept boards of one ledger and campaign (see the module's text)."""

    def __init__(
        self, ledger: Ledger, campaign: Campaign, wait: float = 0.5, glance: float = 0.1
    ) -> None:
        self.ledger = ledger
        self.campaign = campaign
        self.wait, self.glance = wait, glance
        self._took: dict[str, float] = {}  # how long each kind's last read took, seconds
        self.changes = Changes(ledger.reads)
        self._lock = threading.Lock()
        self._boards: dict[str, Board] = {}
        self._reading: dict[str, Future[Board]] = {}
        self._started: dict[str, object] = {}  # the stamp each kind's latest read began at
        self._failing: set[str] = set()  # kinds whose last read failed (logged once)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailer-board")

    def warm(self, kind: str = "invitation") -> None:
        """Start reading `kind`'s board now (the server starting), without waiting for it."""
        self._read(kind, None)

    def board(self, kind: str = "invitation") -> Board:
        """The board of `kind` as of now, or, while a new one is being read, the last one
        (its `read_at` says when) once `wait` seconds have passed. While the ledger cannot
        be read, the last one too; `LedgerAway` when there is none."""
        with self._lock:
            kept = self._boards.get(kind)
        try:
            stamp = self.changes.stamp()
            if kept is not None and kept.stamp == stamp:
                return kept
            reading = self._read(kind, stamp)
            if kept is None:
                return reading.result()
            slow = self._took.get(kind, 0.0) > self.wait
            return reading.result(timeout=self.glance if slow else self.wait)
        except TimeoutError as exc:  # still reading: what was read last
            return kept if kept is not None else self._instead(kind, exc)
        except Exception as exc:  # the database away, a read that failed
            return self._instead(kind, exc)

    def _instead(self, kind: str, exc: BaseException) -> Board:
        """What to show when reading failed: the board read last (logged once per failing
        spell), or `LedgerAway`. The message names the error's kind, never its SQL."""
        with self._lock:
            kept = self._boards.get(kind)
            first = kind not in self._failing
            self._failing.add(kind)
        reason = type(exc).__name__
        if first:
            shown = f"the board read at {kept.read_at:%H:%M:%S}Z" if kept else "nothing"
            log.warning("the dashboard cannot read the ledger (%s); showing %s", reason, shown)
        if kept is None:
            raise LedgerAway(f"the ledger cannot be read just now ({reason}); try again shortly")
        return kept

    def _read(self, kind: str, stamp: object) -> Future[Board]:
        """A read that will see everything committed before `stamp` was taken: the one
        under way if it started at that stamp or has not started yet, else a new one (it
        waits for the one under way: one worker)."""
        with self._lock:
            latest = self._reading.get(kind)
            if (
                latest is not None
                and not latest.done()
                and (not latest.running() or self._started.get(kind) == stamp)
            ):
                return latest
            future = self._pool.submit(self._build, kind)
            self._reading[kind] = future
            return future

    def _build(self, kind: str) -> Board:
        stamp = self.changes.stamp()  # before reading: a commit meanwhile shows next time
        with self._lock:
            self._started[kind] = stamp
        began = time.monotonic()
        board = self._read_board(kind, stamp)
        with self._lock:
            self._boards[kind] = board
            self._took[kind] = time.monotonic() - began
            self._failing.discard(kind)
        return board

    def _read_board(self, kind: str, stamp: object) -> Board:
        return Board(
            stamp=stamp,
            read_at=self.ledger.clock(),
            report=status(self.ledger, self.campaign, kind),
            opens=opened(self.ledger),
            kinds=sent_kinds(self.ledger),
        )

    def close(self) -> None:
        """Stop reading (a read under way ends first), then let the kept connection go."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.changes.close()
