"""The scheduler's mailbox watcher (mailer/replies/watch.py) against a real Dovecot — with
IDLE and without, renewing IDLE, stopped and started again, a connection dropped, a refused
login, an unverified certificate — and a real Maildir."""

from __future__ import annotations

import contextlib
import mailbox
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from imapclient import IMAPClient

from mailer.replies.attendance import attendance
from mailer.replies.watch import Mailbox, MailboxWatcher, Source, Timing, WatchState
from mailer.settings import ImapSettings, Secret
from mailer.workspace import Workspace
from tests import test_replies
from tests.conftest import Dovecot, run_dovecot
from tests.test_replies import _our_ids, _reply

# Dovecot 2.3's own list after login, less IDLE (and the extensions this test has no use for)
WITHOUT_IDLE = (
    "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE SORT "
    "THREAD=REFERENCES MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 "
    "CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE\n"
)
# A refused login answered at once: no failure delay, no growing penalty per address
QUICK_REFUSAL = """auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
"""
invited = test_replies.invited  # the fixture: TH-50's offices sent the invitation
ACCEPT = "ยินดีเข้าร่วมค่ะ"
DECLINE = "ติดภารกิจ ไม่สามารถเข้าร่วมได้ ขออภัยครับ"


@pytest.fixture
def dovecot_without_idle() -> Iterator[Dovecot]:
    yield from run_dovecot(WITHOUT_IDLE)


@pytest.fixture
def dovecot_quick_refusal() -> Iterator[Dovecot]:
    yield from run_dovecot(QUICK_REFUSAL)


@pytest.fixture
def dovecot_titled() -> Iterator[Dovecot]:
    """Its IMAP processes show their command in their title (`… IDLE]` while in IDLE)."""
    yield from run_dovecot("verbose_proctitle = yes\n")


def _box(ws: Workspace, source: Source) -> Mailbox:
    return Mailbox(ws.ledger(), ws.campaign, source, ws.settings.database_url)


def _idling(server: Dovecot) -> list[int]:
    """The pids of the server's processes serving a connection in IDLE now."""
    who = [shutil.which("doveadm") or "doveadm", "-c", str(server.root / "dovecot.conf")]
    listed = subprocess.run([*who, "who", "-1"], capture_output=True, text=True, check=True)
    pids = [int(line.split()[2]) for line in listed.stdout.splitlines()[1:]]
    return [pid for pid in pids if b" IDLE]" in _title(pid)]


def _title(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:  # it just ended
        return b""


def _settings(server: Dovecot, password: str | None = None) -> ImapSettings:
    return ImapSettings(
        host="127.0.0.1", port=server.port, security="none", username=server.username,
        password=Secret(server.password if password is None else password),
    )  # fmt: skip


def _append(server: Dovecot, raw: bytes) -> None:
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10)
    client.login(server.username, server.password)
    client.append("INBOX", raw)
    client.logout()


def _until(what: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


def _status_of(ws, office: str) -> str | None:  # type: ignore[no-untyped-def]
    found = attendance(ws.ledger()).get(office)
    return found.status if found else None


@pytest.mark.slow
def test_a_reply_appended_under_idle_is_matched_within_seconds(
    invited, dovecot_titled: Dovecot
) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    dovecot = dovecot_titled
    ids = _our_ids(ws)
    lines: list[str] = []
    states: list[WatchState] = []
    timing = Timing(poll=timedelta(minutes=10))  # only IDLE can bring the reply in time
    watcher = MailboxWatcher(_box(ws, _settings(dovecot)), lines.append, timing, states.append)
    with watcher:
        _until(lambda: len(_idling(dovecot)) == 1)
        assert watcher.status().last_good_sync == ws.clock()  # the syncs at start
        _append(dovecot, _reply("saraban.th50@agri.example", ACCEPT, ids["TH-50-agri"]))
        _until(lambda: _status_of(ws, "TH-50-agri") == "accepted")
        _until(lambda: watcher.status().new_in_last_sync == 1)
        status = watcher.status()
        assert (status.mode, status.consecutive_failures, status.last_error) == ("idle", 0, None)
        assert status.source == f"imap:coordinator@127.0.0.1:{dovecot.port}/INBOX"
    assert not watcher.alive  # IDLE ended and logged out
    assert states[-1].mode == "idle"
    assert any("1 new message(s)" in line for line in lines)


@pytest.fixture
def rawlog() -> Iterator[tuple[Dovecot, Path]]:
    """Dovecot writing every connection's commands to a file of its own (rawlog_dir)."""
    folder = Path("/tmp") / f"mailer-rawlog-{uuid.uuid4().hex[:8]}"  # readable by dovecot
    folder.mkdir()
    shutil.chown(folder, "dovecot", "dovecot")
    try:
        for server in run_dovecot(f"rawlog_dir = {folder}\n"):
            yield server, folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _commands(folder: Path) -> list[list[str]]:
    """Each connection's commands, without their time and tag, oldest connection first."""
    logs = sorted(folder.glob("*.in"), key=lambda f: int(f.name.split(".")[-2]))
    return [[_command(line) for line in f.read_text().splitlines()] for f in logs]


def _command(line: str) -> str:
    words = line.split()[1:]  # the time left out
    return "DONE" if words == ["DONE"] else " ".join(words[1:])


@pytest.mark.slow
def test_idle_is_renewed_before_the_timeout_and_ended_on_stop(invited, rawlog) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    ids = _our_ids(ws)
    server, folder = rawlog
    timing = Timing(poll=timedelta(minutes=10), idle_renew=timedelta(seconds=0.3))
    watcher = MailboxWatcher(_box(ws, _settings(server)), print, timing)
    with watcher:
        _until(lambda: any(c.count("IDLE") >= 3 for c in _commands(folder)))  # renewed twice
        _append(server, _reply("saraban.th50@agri.example", ACCEPT, ids["TH-50-agri"]))
        _until(lambda: _status_of(ws, "TH-50-agri") == "accepted")
    waiting = [c for c in _commands(folder) if "IDLE" in c]
    assert len(waiting) == 1  # one long-lived connection
    assert waiting[0][-2:] == ["DONE", "LOGOUT"]  # stop ended IDLE, then logged out
    ours = [command for c in _commands(folder) if 'EXAMINE "INBOX"' in c for command in c]
    assert len([c for c in ours if c.startswith("EXAMINE")]) >= 3  # syncs and the IDLE one
    assert not [c for c in ours if c.startswith(("SELECT", "STORE", "UID STORE"))]  # read-only


@pytest.mark.slow
def test_without_idle_the_folder_is_polled(invited, dovecot_without_idle: Dovecot) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    ids = _our_ids(ws)
    lines: list[str] = []
    server = dovecot_without_idle
    watcher = MailboxWatcher(
        _box(ws, _settings(server)), lines.append, Timing(poll=timedelta(seconds=0.5))
    )
    with watcher:
        _until(lambda: any("does not offer IMAP IDLE" in line for line in lines))
        _append(server, _reply("saraban.th50@prov.example", DECLINE, ids["TH-50-prov"]))
        _until(lambda: _status_of(ws, "TH-50-prov") == "declined", seconds=5)
        assert watcher.status().mode == "poll"
        assert watcher.status().consecutive_failures == 0
    assert not watcher.alive


def _deliver(server: Dovecot, raw: bytes) -> None:
    """Straight into the user's Maildir, as a local delivery agent does (tmp/ then new/)."""
    folder = server.root / "mail" / server.username
    name = f"{time.time():.0f}.{uuid.uuid4().hex}.test"
    (folder / "tmp" / name).write_bytes(raw)
    shutil.chown(folder / "tmp" / name, "dovecot", "dovecot")
    (folder / "tmp" / name).rename(folder / "new" / name)


@pytest.mark.slow
def test_a_server_stopped_and_started_again_is_recovered_from(
    invited, dovecot_titled: Dovecot
) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    dovecot = dovecot_titled
    ids = _our_ids(ws)
    lines: list[str] = []
    timing = Timing(
        poll=timedelta(minutes=10),
        first_retry=timedelta(seconds=0.2),
        max_retry=timedelta(seconds=1),
    )
    watcher = MailboxWatcher(_box(ws, _settings(dovecot)), lines.append, timing)
    with watcher:
        _until(lambda: len(_idling(dovecot)) == 1)
        (serving,) = _idling(dovecot)
        dovecot.stop()
        # Dovecot 2.3's `stop` leaves a session in IDLE to end by itself, some 5 to 15 s later;
        # the rest of the stop is quick: SIGTERM, and it says BYE and goes.
        with contextlib.suppress(ProcessLookupError):
            os.kill(serving, signal.SIGTERM)
        _until(lambda: watcher.status().consecutive_failures >= 2)  # IDLE lost, then a sync
        failed = watcher.status()
        assert failed.last_error is not None
        assert "cannot reach the IMAP server 127.0.0.1" in failed.last_error
        assert failed.last_error_at == ws.clock()
        assert any("cannot wait for new mail" in line and "(BYE " in line for line in lines)
        assert watcher.alive
        _deliver(dovecot, _reply("saraban.th50@agri.example", ACCEPT, ids["TH-50-agri"]))
        dovecot.start()
        _until(lambda: _status_of(ws, "TH-50-agri") == "accepted")
        _until(lambda: watcher.status().consecutive_failures == 0)  # stored, then counted
        _until(lambda: len(_idling(dovecot)) == 1)  # and waiting with IDLE again
        recovered = watcher.status()
        assert recovered.mode == "idle"
        assert recovered.last_error == failed.last_error  # kept, with its time, for the status
    assert any("syncs again after" in line for line in lines)
    assert not any("Traceback" in line for line in lines)


@pytest.mark.slow
def test_an_idle_connection_dropped_without_a_word_is_made_again(
    invited, dovecot_titled: Dovecot
) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    ids = _our_ids(ws)
    lines: list[str] = []
    server = dovecot_titled
    timing = Timing(poll=timedelta(minutes=10), first_retry=timedelta(seconds=0.1))
    watcher = MailboxWatcher(_box(ws, _settings(server)), lines.append, timing)
    with watcher:
        _until(lambda: len(_idling(server)) == 1)
        (first,) = _idling(server)
        os.kill(first, signal.SIGKILL)  # a process of the server this test started; no BYE
        _until(lambda: any("the server closed the connection" in line for line in lines))
        _until(lambda: [p for p in _idling(server) if p != first] != [])  # IDLE again
        _append(server, _reply("saraban.th50@agri.example", ACCEPT, ids["TH-50-agri"]))
        _until(lambda: _status_of(ws, "TH-50-agri") == "accepted")
        assert watcher.status().mode == "idle"
    assert sum("waiting for new mail in" in line for line in lines) == 2  # IDLE, IDLE again
    assert not any("Traceback" in line for line in lines)


@pytest.mark.slow
def test_a_refused_login_is_logged_and_retried_ever_later(
    make_ws,  # type: ignore[no-untyped-def]
    dovecot_quick_refusal: Dovecot,
) -> None:
    ws = make_ws()
    lines: list[str] = []
    timing = Timing(
        poll=timedelta(minutes=10),
        first_retry=timedelta(seconds=0.05),
        max_retry=timedelta(seconds=0.2),
    )
    password = "wrong-s3cret-imap"
    watcher = MailboxWatcher(
        _box(ws, _settings(dovecot_quick_refusal, password)), lines.append, timing
    )
    with watcher:
        _until(lambda: watcher.status().consecutive_failures >= 4)
        after = watcher.sync_now()  # the scheduler's own sync: a state, never an exception
        assert watcher.alive
    assert after.consecutive_failures >= 5
    assert after.last_good_sync is None
    assert after.stale(timedelta(days=365), ws.clock())
    delays = [float(d) for d in re.findall(r"trying again in ([\d.]+) s", "\n".join(lines))]
    assert delays[:4] == [0.05, 0.1, 0.2, 0.2]
    assert all("refused the login of IMAP_USERNAME='coordinator'" in line for line in lines)
    assert any(line.endswith("before the round; the watcher keeps trying") for line in lines)
    assert not any(password in line or "Traceback" in line for line in lines)


@pytest.mark.slow
def test_an_unverified_certificate_is_a_failure_with_its_reason(make_ws, dovecot: Dovecot) -> None:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    untrusted = ImapSettings(
        host="127.0.0.1", port=dovecot.ssl_port, security="ssl", username=dovecot.username,
        password=Secret(dovecot.password),
    )  # fmt: skip
    watcher = MailboxWatcher(
        _box(make_ws(), untrusted), lines.append, Timing(first_retry=timedelta(0))
    )
    with watcher:
        _until(lambda: watcher.status().consecutive_failures >= 2)
    assert "TLS certificate of the IMAP server 127.0.0.1" in (watcher.status().last_error or "")
    assert "does not verify" in lines[0]
    assert not any(dovecot.password in line for line in lines)


@pytest.mark.slow
def test_a_maildir_is_polled(invited, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = invited
    ids = _our_ids(ws)
    lines: list[str] = []
    folder = tmp_path / "coordinator"
    timing = Timing(poll=timedelta(seconds=0.2), first_retry=timedelta(seconds=0.1))
    watcher = MailboxWatcher(_box(ws, folder), lines.append, timing)
    with watcher:
        _until(lambda: watcher.status().consecutive_failures >= 1)  # not there yet
        assert "is not a Maildir" in (watcher.status().last_error or "")
        box = mailbox.Maildir(folder, create=True)
        box.add(_reply("saraban.th50@agri.example", ACCEPT, ids["TH-50-agri"]))
        _until(lambda: _status_of(ws, "TH-50-agri") == "accepted", seconds=5)
        box.add(_reply("saraban.th50@prov.example", DECLINE, ids["TH-50-prov"]))
        _until(lambda: _status_of(ws, "TH-50-prov") == "declined", seconds=5)
        _until(lambda: watcher.status().consecutive_failures == 0)
        status = watcher.status()
        assert (status.mode, status.consecutive_failures) == ("poll", 0)
        assert status.source == f"maildir:{folder.resolve()}"
    assert not watcher.alive


def test_the_delays_grow_to_the_poll_interval() -> None:
    timing = Timing(poll=timedelta(minutes=1))
    assert [timing.retry_after(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert Timing(max_retry=timedelta(seconds=30)).retry_after(100) == 30


def test_a_sync_goes_stale_after_the_limit(make_ws, clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = make_ws()
    mailbox.Maildir(tmp_path / "empty", create=True)
    seen: list[WatchState] = []
    watcher = MailboxWatcher(_box(ws, tmp_path / "empty"), print, on_status=seen.append)
    assert watcher.stale(timedelta(minutes=30), clock())  # never synced
    state = watcher.sync_now()  # the scheduler's own sync, without the thread
    assert (state.last_good_sync, state.new_in_last_sync) == (clock(), 0)
    assert seen == [state]
    assert not watcher.stale(timedelta(minutes=30), clock())
    clock.advance(minutes=31)
    assert watcher.stale(timedelta(minutes=30), clock())
    assert state.as_json()["last_good_sync"] == "2016-11-01T02:00:00+00:00"
