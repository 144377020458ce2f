"""Replies inside the scheduler: the coordinator's mailbox read as mail arrives.

`MailboxWatcher` runs in a background thread of `mailer scheduler run`. For the IMAP folder
it syncs once, then waits on a second, long-lived connection with IDLE (RFC 2177) where the
server's CAPABILITY offers it — re-issued before the server's 30-minute timeout — and syncs
whenever the folder reports a change; without IDLE, and for a Maildir, it syncs every poll
interval. `sync_now` is the scheduler's own sync right before a round picks its audience;
one lock makes it and the watcher's syncs take turns.

A failure (login refused, server down, TLS, a connection dropped during IDLE) is logged
with its reason — never a traceback, never a password — retried after growing delays, and
shown in `status()`; nothing is raised into the scheduler. Time stamps come from the
workspace's clock; the waits are real (`threading.Event.wait`, ended early by `stop`).
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mailer.errors import MailerError
from mailer.replies import sources
from mailer.settings import ImapSettings, hide_secrets

if TYPE_CHECKING:
    from imapclient import IMAPClient

    from mailer.campaign import Campaign
    from mailer.delivery.ledger import Ledger
    from mailer.replies.sync import SyncReport

Log = Callable[[str], None]
Mode = Literal["idle", "poll"]
Source = ImapSettings | Path  # the coordinator's IMAP folder, or a Maildir
_TICK = 1.0  # seconds between two looks at `stop` while in IDLE


@dataclass(frozen=True)
class Timing:
    """How often and how patiently. `poll` is the campaign's `[replies] poll_minutes`."""

    poll: timedelta = timedelta(minutes=5)
    idle_renew: timedelta = timedelta(minutes=29)  # servers may end an IDLE after 30 min
    first_retry: timedelta = timedelta(seconds=5)  # then 10 s, 20 s … up to `max_retry`
    max_retry: timedelta | None = None  # None: the poll interval

    def retry_after(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1, 2, …)."""
        cap = (self.max_retry or self.poll).total_seconds()
        first = self.first_retry.total_seconds()
        return float(min(first * 2 ** min(max(failures - 1, 0), 30), cap))


@dataclass(frozen=True)
class WatchState:
    """What the watcher knows; `mailer scheduler status` shows it."""

    source: str
    mode: Mode = "poll"  # "idle" once an IDLE connection waits for mail
    last_good_sync: datetime | None = None
    last_error: str | None = None  # the latest failure, kept after a recovery
    last_error_at: datetime | None = None
    consecutive_failures: int = 0  # since the last good sync
    new_in_last_sync: int = 0

    def stale(self, max_age: timedelta, now: datetime) -> bool:
        """Whether the last good sync is older than `max_age` (or there was none)."""
        return self.last_good_sync is None or now - self.last_good_sync > max_age

    def as_json(self) -> dict[str, Any]:
        """For `status --json`: times in ISO 8601."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def source_id(source: Source) -> str:
    """The name replies from `source` are stored under (as `mailer replies sync` does)."""
    return f"maildir:{source.resolve()}" if isinstance(source, Path) else source.source_id


@dataclass(frozen=True)
class Mailbox:
    """What a watcher reads (`source`) and where the replies go (the campaign's ledger);
    `database_url` is masked in every message the watcher logs."""

    ledger: Ledger
    campaign: Campaign
    source: Source
    database_url: str = ""


def _sync(box: Mailbox) -> SyncReport:
    """One sync of the mailbox: the one place this module calls `replies.sync`."""
    from mailer.replies.sync import highest_uid, sync

    name, source = source_id(box.source), box.source
    if isinstance(source, Path):
        return sync(box.ledger, box.campaign, name, sources.maildir(source))
    found = sources.imap(source, lambda v: highest_uid(box.ledger, name, v))
    return sync(box.ledger, box.campaign, name, found)


class MailboxWatcher:
    """Keeps the stored replies current; see the module's docstring.

    `start()` runs it in a daemon thread, `stop()` ends it (IDLE done, logged out) within
    about a second; also a context manager."""

    def __init__(
        self,
        box: Mailbox,
        log: Log,
        timing: Timing = Timing(),
        on_status: Callable[[WatchState], None] | None = None,
    ) -> None:
        self.box = box
        self.source = box.source
        self.log = log
        self.timing = timing
        self.on_status = on_status
        self._state = WatchState(source_id(box.source))
        self._state_lock = threading.Lock()
        self._sync_lock = threading.Lock()  # never two syncs at once
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle_client: IMAPClient | None = None
        self._idle_offered: bool | None = None  # unknown until a connection tells
        self._idle_failures = 0  # IDLE connections lost in a row: their own growing delay

    # --- the scheduler's side -------------------------------------------------------------

    def start(self) -> None:
        if self.alive:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="mailbox-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> MailboxWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self) -> WatchState:
        with self._state_lock:
            return self._state

    def stale(self, max_age: timedelta, now: datetime) -> bool:
        return self.status().stale(max_age, now)

    def sync_now(self) -> WatchState:
        """Sync at once (waiting for a sync under way to finish first); never raises."""
        self._attempt("before the round")
        return self.status()

    # --- the watcher's thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                if self._attempt():
                    self._wait_for_mail()
                else:
                    self._pause(self.timing.retry_after(self.status().consecutive_failures))
        finally:
            self._drop_idle(logout=True)

    def _attempt(self, when: str = "") -> bool:
        """One sync; its outcome goes into the state. False if it failed."""
        with self._sync_lock:
            started = self.box.ledger.clock()  # what the folder held then is what is stored now
            try:
                report = _sync(self.box)
            except Exception as exc:  # a background reader must not die, nor stop the rounds
                failures = self.status().consecutive_failures + 1
                then = (
                    f" {when}; the watcher keeps trying"
                    if when
                    else f"; trying again in {_seconds(self.timing.retry_after(failures))}"
                )
                self._failed(f"cannot sync {self._state.source}: {self._reason(exc)}", then)
                return False
        before = self._update(
            last_good_sync=started, consecutive_failures=0, new_in_last_sync=report.new
        )
        if before.consecutive_failures:
            self.log(
                f"replies: {self._state.source} syncs again after "
                f"{before.consecutive_failures} failure(s)"
            )
        if report.new:
            self.log(f"replies: {report.new} new message(s) from {self._state.source}")
        return True

    def _wait_for_mail(self) -> None:
        """Return when there may be new mail, after a failure's delay, or on stop."""
        if isinstance(self.source, ImapSettings) and self._idle_offered is not False:
            try:
                self._idle(self.source)
            except Exception as exc:  # as in _attempt
                self._drop_idle(logout=False)
                self._idle_failures += 1
                delay = self.timing.retry_after(self._idle_failures)
                self._failed(
                    f"cannot wait for new mail in {self._state.source}: {self._reason(exc)}",
                    f"; trying again in {_seconds(delay)}",
                )
                self._pause(delay)
                return
            if self._idle_offered:
                return
        self._update(mode="poll")
        self._pause(self.timing.poll.total_seconds())

    def _idle(self, settings: ImapSettings) -> None:
        """Wait with IDLE until the folder reports a change; return at once after a new
        connection, or one that finds the server offers no IDLE (`_idle_offered`)."""
        client = self._idle_client
        if client is None:
            client, _ = sources.open_folder(settings)
            self._idle_offered = client.has_capability("IDLE")
            if not self._idle_offered:
                sources.close(client)
                minutes = self.timing.poll.total_seconds() / 60
                self.log(
                    f"replies: {settings.host} does not offer IMAP IDLE; reading "
                    f"{self._state.source} every {minutes:g} min"
                )
                return
            _keep_alive(client.socket())
            self._idle_client = client
            if self.status().mode != "idle" or self._idle_failures:  # or again
                self.log(f"replies: waiting for new mail in {self._state.source} (IMAP IDLE)")
            self._update(mode="idle")
            # IDLE reports what arrives after this connection's SELECT; what came between
            # the last sync and that SELECT is read by one more sync, now.
            return
        while not self._stopping.is_set():
            changed = self._idle_once(client)
            self._idle_failures = 0
            if changed:
                return

    def _idle_once(self, client: IMAPClient) -> bool:
        """One IDLE command, ended by a change (True), the renewal time or a stop (False)."""
        client.idle()
        renew_at = time.monotonic() + self.timing.idle_renew.total_seconds()
        changed = False
        while not changed and not self._stopping.is_set():
            left = renew_at - time.monotonic()
            if left <= 0:
                break
            responses = client.idle_check(timeout=min(_TICK, left))
            if not responses and _closed(client.socket()):
                raise ConnectionError("the server closed the connection")
            changed = _changed(responses)
        _, responses = client.idle_done()
        return changed or _changed(responses)

    def _drop_idle(self, *, logout: bool) -> None:
        """Close the IDLE connection: LOGOUT, or (when it failed) just the socket — a server
        shutting down may leave a LOGOUT unanswered for many seconds."""
        client, self._idle_client = self._idle_client, None
        if client is None:
            return
        if logout:
            sources.close(client)
        else:
            with contextlib.suppress(OSError):
                client.shutdown()

    def _pause(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    # --- the state ------------------------------------------------------------------------

    def _failed(self, reason: str, then: str) -> None:
        now = self.box.ledger.clock()
        self._change(
            lambda s: replace(
                s, last_error=reason, last_error_at=now,
                consecutive_failures=s.consecutive_failures + 1,
            )
        )  # fmt: skip
        self._idle_offered = None  # the server may come back changed: ask again
        self.log(f"replies: {reason}{then}")

    def _update(self, **changes: Any) -> WatchState:
        return self._change(lambda s: replace(s, **changes), notify="last_good_sync" in changes)

    def _change(
        self, change: Callable[[WatchState], WatchState], *, notify: bool = True
    ) -> WatchState:
        """Apply `change` to the state (atomically); tell `on_status` after an attempt or
        any change. The state before is returned."""
        with self._state_lock:
            before = self._state
            self._state = state = change(before)
        if self.on_status is not None and (notify or state != before):
            try:
                self.on_status(state)
            except Exception as exc:  # recording must not stop the reading
                self.log(f"replies: could not record the watcher's state: {self._reason(exc)}")
        return before

    def _reason(self, exc: BaseException) -> str:
        """What went wrong, in one line, without the IMAP or database password."""
        if isinstance(exc, MailerError):
            text = str(exc)
        elif isinstance(exc, imaplib.IMAP4.abort):
            text = f"the connection was lost ({exc})"
        elif isinstance(exc, OSError) and exc.strerror:
            text = f"{type(exc).__name__}: {exc.strerror}"
        else:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        text = " ".join(text.split())[:500]
        password = self.source.password.value if isinstance(self.source, ImapSettings) else ""
        if len(password) >= 3:
            text = text.replace(password, "***")
        return hide_secrets(text, self.box.database_url) if self.box.database_url else text


def _changed(responses: Sequence[tuple[Any, ...]]) -> bool:
    """Whether IDLE's untagged responses say the folder may have changed: anything but a
    keep-alive `* OK Still here`; a `* BYE` is the connection's end."""
    for response in responses:
        if response and response[0] == b"BYE":
            raise ConnectionError(f"the server ended the connection ({_text(response)})")
    return any(not response or response[0] != b"OK" for response in responses)


def _text(response: tuple[Any, ...]) -> str:
    words = (w.decode("ascii", "replace") if isinstance(w, bytes) else str(w) for w in response)
    return " ".join(words)[:200]


def _closed(sock: socket.socket) -> bool:
    """Whether the peer has closed the connection or it failed (IMAPClient's `idle_check`
    reports an end of stream as "no responses")."""
    with socket.fromfd(sock.fileno(), sock.family, sock.type) as raw:  # the bytes, not TLS
        try:
            return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True


def _keep_alive(sock: socket.socket) -> None:
    """TCP keep-alive on the IDLE connection, so a peer that vanished without closing is
    noticed within minutes, not at the next renewal."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _seconds(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
