"""The letters a round will attach, rendered before its drain, in a pool of processes.

A letter costs ~90 ms of CPU (~2 s for a process's first: PyThaiNLP's dictionary, the
fonts); 532 of them in the send loop would add ~50 s of rendering between messages. So
`render_ahead` renders every letter the rows still to go need and that is not stored yet,
one process per core (WeasyPrint is pure Python enough that threads would not help), and
stores each as it comes back; the drain then only reads them (`mailer.letter_pdf.store`).
A letter that cannot be made is left unstored: its row fails alone in the drain, with the
reason. Fewer than `POOL_FROM` letters are rendered here, in this process (a pool costs a
process start and the first-letter load per worker).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from mailer.campaign import Campaign
from mailer.compose import Composer
from mailer.delivery.drain import invitee_records
from mailer.delivery.ledger import Ledger
from mailer.errors import MailerError
from mailer.invitees.importing import InviteeRecord
from mailer.letter_pdf.printer import LetterPrinter
from mailer.letter_pdf.settings import Kind, LetterVersion
from mailer.letter_pdf.store import Key, LetterStore, letter_kind, render_one
from mailer.versions import versions

POOL_FROM = 8  # letters: fewer are rendered in this process
LetterProgress = Callable[[int, int, str], None]
"""Called after each letter: (done, total, "invitee id: stored" or the reason it failed)."""


@dataclass
class AheadReport:
    rendered: int = 0
    already: int = 0  # stored before this run
    failed: dict[str, str] = field(default_factory=dict)  # invitee id → why
    processes: int = 0  # 0: rendered in this process


def render_ahead(
    ledger: Ledger,
    composer: Composer,
    *,
    workers: int | None = None,
    progress: LetterProgress | None = None,
) -> AheadReport:
    """Render and store the letters of every row still to go (nothing when the campaign
    does not attach letters)."""
    report = AheadReport()
    if not composer.campaign.letter.attach:
        return report
    store = LetterStore(ledger, composer)
    wanted = _wanted(ledger)
    missing = store.missing(wanted)
    report.already = len(dict.fromkeys(wanted)) - len(missing)
    if not missing:
        return report
    records = invitee_records(ledger.engine, list({k[0] for k in missing}))
    jobs = [(key, records[key[0]], store.version(key[2])) for key in missing if key[0] in records]
    count = min(workers or os.cpu_count() or 1, len(jobs))
    if len(jobs) < POOL_FROM or count < 2:
        for key, invitee, _ in jobs:
            _done(store, report, key, functools.partial(store.render, invitee, key[1], key[2]))
            _tell(progress, report, len(jobs), key[0])
        return report
    report.processes = count
    _pooled(store, report, jobs, count, progress)
    return report


def _wanted(ledger: Ledger) -> list[Key]:
    """The letter each row still to go will carry, at the version it will go out with (an
    invitation of an earlier SEQUENCE goes out at the latest: `RowMessages.at_current`)."""
    found = versions(ledger)
    current = found[-1].sequence if found else 0
    keys: list[Key] = []
    for invitee_id, ledger_kind, sequence in ledger.to_send():
        kind = letter_kind(ledger_kind)
        if kind is not None:
            keys.append(
                (invitee_id, kind, max(sequence, current) if kind == "invitation" else sequence)
            )
    return keys


def _done(store: LetterStore, report: AheadReport, key: Key, make: Callable[[], bytes]) -> None:
    try:
        store.keep(key, make())
    except MailerError as problem:
        report.failed[key[0]] = str(problem)
        return
    report.rendered += 1


def _tell(progress: LetterProgress | None, report: AheadReport, total: int, who: str) -> None:
    if progress is not None:
        done = report.rendered + len(report.failed)
        progress(done, total, report.failed.get(who, f"{who}: stored"))


def _pooled(
    store: LetterStore,
    report: AheadReport,
    jobs: list[tuple[Key, InviteeRecord, LetterVersion]],
    count: int,
    progress: LetterProgress | None,
) -> None:
    """Render `jobs` in `count` fresh processes (spawned: nothing of this process's state,
    its database connections or threads, is inherited), storing each as it comes back."""
    campaign, templates = store.campaign, store.composer.templates_dir
    with ProcessPoolExecutor(
        count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start,
        initargs=(campaign, templates),
    ) as pool:
        futures: dict[Future[bytes], Key] = {
            pool.submit(_render, invitee, key[1], version): key for key, invitee, version in jobs
        }
        try:
            for future in as_completed(futures):
                key = futures[future]
                _done(store, report, key, future.result)
                _tell(progress, report, len(jobs), key[0])
        except BrokenProcessPool:  # a renderer died: the rest are rendered as they are sent
            for future in futures:
                future.cancel()


_printer: LetterPrinter | None = None  # one per pool process


def _start(campaign: Campaign, templates: Path) -> None:
    global _printer  # the pool process's own printer, built once
    _printer = LetterPrinter(Composer(campaign, templates))


def _render(invitee: InviteeRecord, kind: Kind, version: LetterVersion) -> bytes:
    assert _printer is not None
    return render_one(_printer, invitee, kind, version)
