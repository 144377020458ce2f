"""Letter (PDF) benchmark: `python -m bench.letters [--offices 532] [--workers 2]`.

Measures, in one run, on this machine:
  (a) the baseline: one office's e-mail letter (subject, text, HTML: `Composer.letter`);
  (b) one office's official letter as PDF (`LetterPrinter.render`), after a warm-up (the first
      letter of a process also loads PyThaiNLP's dictionary and the fonts: shown apart);
  (c) the whole batch (532 offices by default) as PDFs, serially and in a process pool;
and prints the times (wall clock, and CPU time for (b): a busy machine moves wall clock a lot),
(b)/(a), and the pool's speed-up over serial.
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


if __name__ == "__main__":
    main()
