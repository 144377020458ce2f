"""Reply benchmark: `python -m bench.replies [--messages 10000]`.

Fills a Maildir with N replies cycled from the fixture corpus (tests/fixtures/replies/, each
copy with its own Message-ID), then measures `replies sync` from it — store raw, classify,
match — against a ledger of 532 invited offices, and a second sync that must add nothing.
"""

from __future__ import annotations

import argparse
import mailbox
import os
import shutil
import tempfile
import time
from pathlib import Path

from mailer.contacts import import_contacts
from mailer.replies import sources
from mailer.replies.tracking import sync
from mailer.settings import load_settings
from mailer.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    os.chdir(ROOT)
    work = Path(tempfile.mkdtemp(prefix="mailer-bench-replies-"))
    try:
        corpus = sorted((ROOT / "tests" / "fixtures" / "replies").glob("*.eml"))
        box = mailbox.Maildir(work / "inbox", create=True)
        for n in range(args.messages):
            raw = corpus[n % len(corpus)].read_bytes()
            box.add(raw.replace(b"Message-ID: <", f"Message-ID: <bench{n}.".encode(), 1))
        settings = load_settings({**os.environ, "DATABASE_URL": f"sqlite:///{work / 'm.db'}"})
        ws = Workspace(settings)
        import_contacts(ws.engine, ROOT / "contacts.csv")
        start = time.perf_counter()
        report = sync(ws, "bench", sources.maildir(work / "inbox"))
        first = time.perf_counter() - start
        start = time.perf_counter()
        again = sync(ws, "bench", sources.maildir(work / "inbox"))
        second = time.perf_counter() - start
        ws.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rate = report.new / first
    print(f"{report.new:,} replies synced and classified in {first:.1f} s: {rate:,.0f} msg/s")
    print(f"re-sync of the same Maildir: {again.new} new in {second:.2f} s")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())))


if __name__ == "__main__":
    main()
