"""Letter (PDF) benchmark: `python -m bench.letters [--offices 532] [--workers 2]`.

Measures, in one run, on this machine:
  (a) the baseline: one office's e-mail letter (subject, text, HTML: `Composer.letter`);
  (b) one office's official letter as PDF (`LetterPrinter.render`), after a warm-up (the first
      letter of a process also loads PyThaiNLP's dictionary and the fonts: shown apart);
  (c) the whole batch (532 offices by default) as PDFs, serially and in a process pool;
  (d) the batch sent, `send_round` as `mailer send invitations` runs it (queue, render the
      letters ahead in the pool, drain into the dev mail server on loopback, SQLite ledger),
      without and with `[letter] attach = true`;
and prints the times (wall clock, and CPU time for (b): a busy machine moves wall clock a lot),
(b)/(a), the pool's speed-up over serial, and (d)'s throughput with the letter / without.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import date
from pathlib import Path

from mailer.campaign import load_campaign
from mailer.compose import Composer
from mailer.invitees.importing import InviteeRecord
from mailer.letter_pdf import LetterPrinter, LetterSettings, LetterVersion

ROOT = Path(__file__).resolve().parent.parent
OFFICE = InviteeRecord(
    "TH-50-agri",
    "สำนักงานเกษตรจังหวัดเชียงใหม่",
    "เรียน เกษตรจังหวัดเชียงใหม่",
    ("saraban.th50@agri.example",),
)
SETTINGS = LetterSettings(number="สรอ ๐๑๐๐/ว ๑๒๓")
_printer: LetterPrinter | None = None


def _offices(count: int) -> list[InviteeRecord]:
    return [
        replace(OFFICE, invitee_id=f"TH-{i:03d}", organisation=f"สำนักงานจังหวัดที่ {i}")
        for i in range(count)
    ]


def _make_printer() -> LetterPrinter:
    campaign = load_campaign(ROOT / "schedules" / "egov-seminar-2559.toml")
    return LetterPrinter(Composer(campaign, ROOT / "templates"))


def _render(office: InviteeRecord) -> int:
    global _printer  # one printer per worker process (fonts, templates: built once)
    if _printer is None:
        _printer = _make_printer()
    version = LetterVersion(_printer.composer.campaign.event, 0, date(2016, 11, 1))
    return len(_printer.render(SETTINGS, office, version, "invitation"))


def _each(action: Callable[[], object], times: int) -> float:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--offices", type=int, default=532)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    start = time.perf_counter()
    printer = _make_printer()
    version = LetterVersion(printer.composer.campaign.event, 0, date(2016, 11, 1))
    size = len(printer.render(SETTINGS, OFFICE, version, "invitation"))
    first = time.perf_counter() - start
    mail = _each(lambda: printer.composer.letter(OFFICE, "invitation"), args.samples * 50)
    pdf = _each(lambda: printer.render(SETTINGS, OFFICE, version, "invitation"), args.samples)
    cpu = time.process_time()
    for _ in range(args.samples):
        printer.render(SETTINGS, OFFICE, version, "invitation")
    pdf_cpu = (time.process_time() - cpu) / args.samples  # less moved by a busy machine
    print(f"first letter of a process (loads, then renders): {first * 1000:8.1f} ms")
    print(f"(a) e-mail letter (baseline):                   {mail * 1e6:8.1f} µs")
    print(f"(b) PDF letter:                                 {pdf * 1000:8.1f} ms  ({size:,} bytes)")
    print(f"    (b) in CPU time:                            {pdf_cpu * 1000:8.1f} ms")
    print(f"    (b)/(a):                                    {pdf / mail:8.0f}×")

    offices = _offices(args.offices)
    global _printer
    _printer = printer
    start = time.perf_counter()
    for office in offices:
        _render(office)
    serial = time.perf_counter() - start
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        sizes = list(pool.map(_render, offices, chunksize=8))
    pooled = time.perf_counter() - start
    n = len(offices)
    print(f"(c) {n} PDFs serially:                          {serial:8.1f} s  ({n / serial:.1f}/s)")
    print(
        f"    {n} PDFs, {args.workers} processes:                   {pooled:8.1f} s  "
        f"({n / pooled:.1f}/s, {serial / pooled:.2f}× serial; each process loads once)"
    )
    print(f"    {n} PDFs: {sum(sizes) / 1e6:.1f} MB, {statistics.mean(sizes) / 1e3:.1f} kB each")
    batch(args.offices)


LETTER = """
[letter]
attach = true
number = "สรอ ๐๑๐๐/ว ๑๒๓"
signer_name = "นายสมชาย ใจดี"
dated = 2016-11-01
"""


def _send(offices: int, *, attach: bool) -> tuple[float, float, int]:
    """(seconds in all, seconds rendering ahead, bytes sent) for one round of `offices`."""
    import socket
    import tempfile

    from mailer.delivery.devserver import DevServer
    from mailer.invitees.importing import import_contacts
    from mailer.rounds.send import send_round
    from mailer.settings import load_settings
    from mailer.workspace import Workspace
    from tests.helpers import write_synthetic_contacts

    with tempfile.TemporaryDirectory() as folder, socket.socket() as probe:
        tmp = Path(folder)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        campaign = tmp / "campaign.toml"
        text = (ROOT / "schedules" / "egov-seminar-2559.toml").read_text(encoding="utf-8")
        campaign.write_text(text + (LETTER if attach else ""), encoding="utf-8")
        contacts = tmp / "contacts.csv"
        write_synthetic_contacts(contacts, offices)
        env = {
            "DATABASE_URL": f"sqlite:///{tmp / 'mailer.db'}",
            "MAILER_CAMPAIGN": str(campaign),
            "MAILER_TEMPLATES": str(ROOT / "templates"),
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "MAILER_RATE_PRESET": "none",
        }
        ws = Workspace(load_settings(env, dotenv_path=None))
        import_contacts(ws.engine, contacts)
        rendering: list[float] = []
        with DevServer("127.0.0.1", port, tmp / "maildir"):
            start = time.perf_counter()
            report = send_round(
                ws,
                "invitation",
                letters=lambda done, total, _: rendering.append(time.perf_counter()),
            )
            total = time.perf_counter() - start
        assert report.drain.sent == offices, report.drain.problems[:3]
        size = sum(p.stat().st_size for p in (tmp / "maildir" / "new").iterdir())
        ws.close()
    return total, (rendering[-1] - start) if rendering else 0.0, size


def batch(offices: int) -> None:
    """(d): the round without and with the letter, one after the other in this run."""
    plain, _, plain_size = _send(offices, attach=False)
    letters, ahead, letters_size = _send(offices, attach=True)
    print(f"(d) {offices} invitations sent, no letter:             {plain:8.1f} s  "
          f"({offices / plain:.0f}/s, {plain_size / offices / 1e3:.0f} kB each)")  # fmt: skip
    print(f"    {offices} invitations sent, with the letter (PDF): {letters:8.1f} s  "
          f"({offices / letters:.1f}/s, {letters_size / offices / 1e3:.0f} kB each; "
          f"{ahead:.1f} s of it rendering ahead, the drain {letters - ahead:.1f} s)")  # fmt: skip
    print(f"    throughput with / without the letter:          {plain / letters:8.3f}")
    drain = max(letters - ahead, 1e-9)
    print(f"    the round less its rendering, with / without:  {plain / drain:8.3f}")


if __name__ == "__main__":
    main()
