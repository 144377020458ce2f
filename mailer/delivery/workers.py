"""`send … --workers N`: helper `mailer worker` processes that drain the ledger alongside
the sending command — both sides of their handshake (start, `GO` on stdin, the report on
stdout, the stop grace) — and stopping any sender cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import IO, NoReturn, TypeVar

from mailer.delivery.context import DeliveryContext
from mailer.delivery.drain import drain
from mailer.delivery.ledger import Ledger
from mailer.delivery.stats import COUNTED, DrainStats, Outcome, Progress
from mailer.delivery.transport import SmtpTransport
from mailer.models import DeliveryState
from mailer.signals import stop_on_signals as stop_on_signals

S = DeliveryState


GO = "go"  # what a helper waits for on stdin before it sends anything
T = TypeVar("T")


def wait_for_go(ready: Callable[[], T]) -> T | None:
    """The helper's side of the handshake (`mailer worker --after-go`): get ready while the
    round is being queued (`ready` opens the database and builds the composer), then wait
    for `GO` on stdin. None: the sending command closed stdin instead (the round could not
    be queued), and the helper exits without sending."""
    prepared = ready()
    return prepared if sys.stdin.readline().strip() == GO else None


def leave_helper(flush: Callable[[], None], close: Callable[[], None]) -> NoReturn:
    """A helper's way out once its report is written: everything is recorded (the ledger
    commits each message; `flush` writes the report, `close` disposes of the database), so
    skip the interpreter's tear-down, which the `send` command would sit waiting for.
    Measured (4 helpers draining 2,000 queued invitations, 2 × 2 runs): from a helper's
    report to its exit 0.25-1.16 s with a normal exit, 0.002-0.048 s with `os._exit`; the
    command waits for the slowest. mailer registers no `atexit` handler to lose."""
    flush()
    sys.stderr.flush()
    close()
    os._exit(0)


STOP_GRACE = 300  # seconds a stopping helper may take over the SMTP exchange in hand
_DONE = (S.sent, S.failed, S.uncertain, S.retry_wait)


class Workers:
    """Helper `mailer worker` processes for `send … --workers N`: this process drains the
    ledger and `count` helpers drain it with it. Each claims its own rows (a lease), so no
    row is sent by two of them.

    They are started before the round is queued, so their start-up (imports, opening the
    database, compiling the templates) overlaps the queuing, and wait for `GO` on stdin.
    Closed before `drain` (the round could not be queued), they exit without sending."""

    def __init__(self, count: int, env: Mapping[str, str]) -> None:
        command = [sys.executable, "-m", "mailer", "worker", "--json", "--after-go"]
        self._procs: list[tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes]]] = []
        for _ in range(count):
            # Files, not pipes: a chatty worker can never block on a full pipe.
            out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
            proc = subprocess.Popen(
                command, env=dict(env), stdin=subprocess.PIPE, stdout=out, stderr=err
            )
            self._procs.append((proc, out, err))

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Tell helpers that were never started to go home, ask any still sending (this
        process is leaving on an error) to stop after the message in hand, and wait."""
        for proc, _, _ in self._procs:
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # EOF instead of GO: exit without sending
            elif proc.poll() is None:
                proc.terminate()  # SIGTERM: finish and record the message in hand, then stop
        for proc, out, err in self._procs:
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:  # stuck: whatever it was sending is uncertain
                proc.kill()
                proc.wait()
            out.close()
            err.close()

    def drain(
        self, ctx: DeliveryContext, transport: SmtpTransport, progress: Progress | None = None
    ) -> DrainStats:
        """Start the helpers, drain here too, wait for them, and add up what all did.
        Progress counts this process's messages as they go and the helpers' from the
        ledger twice a second."""
        watch = _Progress(ctx.ledger, progress)
        for proc, _, _ in self._procs:
            assert proc.stdin is not None
            with contextlib.suppress(OSError):  # a helper that already failed says why below
                proc.stdin.write(f"{GO}\n".encode())
                proc.stdin.close()
        stats = drain(ctx, transport, watch.ours)
        while any(proc.poll() is None for proc, _, _ in self._procs):
            if ctx.stopping.is_set():  # stopped by a signal: the helpers stop as this one did
                for proc, _, _ in self._procs:
                    if proc.poll() is None:
                        proc.terminate()
            time.sleep(0.05)  # real processes run on real time, whatever ctx.clock says
            watch.catch_up()
        watch.catch_up(at_once=True)
        # Every helper's report counts, even one that stopped or failed: the command prints
        # what was done, then says which helper stopped and why.
        for number, (proc, out, err) in enumerate(self._procs, start=1):
            _add_report(stats, number, proc.returncode, out, err)
        return stats


class _Progress:
    """This process's outcomes as they come, and the helpers' as the ledger counts them."""

    def __init__(self, ledger: Ledger, progress: Progress | None) -> None:
        self.ledger = ledger
        self.progress = progress
        self.baseline = self._done()
        self.own = self.others = 0
        self.next_look = time.monotonic()

    def _done(self) -> int:
        counts = self.ledger.counts()
        return sum(counts[s] for s in _DONE)

    def ours(self, outcome: Outcome) -> None:
        self.own += 1
        if self.progress is not None:
            self.progress(outcome)
        self.catch_up()

    def catch_up(self, *, at_once: bool = False) -> None:
        if self.progress is None or (not at_once and time.monotonic() < self.next_look):
            return
        self.next_look = time.monotonic() + 0.5
        now_others = self._done() - self.baseline - self.own
        for _ in range(now_others - self.others):
            self.progress(Outcome("(workers)", S.sent, ""))
        self.others = max(self.others, now_others)


def _add_report(stats: DrainStats, number: int, code: int, out: IO[bytes], err: IO[bytes]) -> None:
    """Add helper `number`'s report (its last line of JSON) to `stats`, and why it stopped."""
    out.seek(0)
    err.seek(0)
    lines = out.read().decode("utf-8", "replace").strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else {}
    except ValueError:  # it died while writing its report: say so below
        summary = {}
    for key in COUNTED:
        setattr(stats, key, getattr(stats, key) + int(summary.get(key, 0)))
    stats.problems += [Outcome(*problem) for problem in summary.get("problems", [])]
    why = summary.get("stopped")
    if code != 0 and not why:
        why = err.read().decode("utf-8", "replace").strip() or f"exit {code}"
    if why and why != stats.stopped:
        note = f"helper {number} stopped: {why}"
        stats.stopped = f"{stats.stopped}; {note}" if stats.stopped else note
