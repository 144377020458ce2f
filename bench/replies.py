"""Reply benchmark: `python -m bench.replies [--messages 10000]`.

Fills a Maildir with N replies cycled from the fixture corpus (tests/fixtures/replies/, each
copy with its own Message-ID), then measures `replies sync` from it — store raw, classify,
match — against a ledger of 532 offices sent their invitation (with the Message-IDs the
corpus answers, so its bounces and threads are tied to their offices), and a second sync
that must add nothing.
Then the hostile row: 1 MB messages shaped to make careless patterns quadratic (runs of
"--" and spaces, unclosed <script>, "<a@" without ">", megabyte headers), each classified
on its own, the slowest printed against an average corpus message.
"""

from __future__ import annotations

import argparse
import hashlib
import mailbox
import os
import shutil
import tempfile
import time
from pathlib import Path

from mailer.invitees.importing import import_contacts
from mailer.replies import sources
from mailer.replies.classify import classify
from mailer.replies.sync import sync
from mailer.rounds.send import select_invitees
from mailer.settings import load_settings
from mailer.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
MEGABYTE = 1_000_000


def _hostile(subtype: str, body: str, **headers: str) -> bytes:
    fields = {"From": "someone@else.example", "Subject": "Re: seminar", **headers}
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return (
        f"{head}MIME-Version: 1.0\r\nContent-Type: text/{subtype}; charset=utf-8\r\n\r\n"
    ).encode() + body.encode()


HOSTILE = {
    "'--' then a megabyte of spaces": _hostile("plain", "--" + " " * MEGABYTE + "x"),
    "'-- ' repeated": _hostile("plain", "-- " * (MEGABYTE // 3)),
    "unclosed <script>": _hostile("html", "<script" * (MEGABYTE // 7)),
    "'<a@' without '>'": _hostile("plain", "<" + "a@" * (MEGABYTE // 2)),
    "'โทร' and spaces": _hostile("plain", ("ส่งผู้แทน โทร" + " " * 300) * (MEGABYTE // 313)),
    "a megabyte Subject of encoded words": _hostile(
        "plain", "ยินดีเข้าร่วม", Subject="=?utf-8?q?a?= " * (MEGABYTE // 14)
    ),
    "a bounce-shaped megabyte": _hostile(
        "plain", "user unknown: a@b.example\r\n" * (MEGABYTE // 27), Subject="Undeliverable"
    ),
}


def _invited(ws: Workspace) -> None:
    """Every office sent its invitation, with the Message-ID the corpus replies to."""

    def token(invitee_id: str) -> str:  # as tests/fixtures/replies/README.md says
        if invitee_id == "TH-50-agri":
            return "0123456789ab"
        return hashlib.sha1(invitee_id.encode()).hexdigest()[:12]

    rows = [(r.invitee_id, "; ".join(r.email)) for r in select_invitees(ws.engine)]
    ws.ledger().enqueue(
        rows, "invitation", 0, lambda i: f"<egov-seminar-2559.{i}.invitation.{token(i)}@ega.or.th>"
    )
    with ws.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE delivery SET state = 'sent'")


def _hostile_row(corpus: list[Path]) -> None:
    start = time.perf_counter()
    for file in corpus:
        classify(file.read_bytes())
    typical = (time.perf_counter() - start) / len(corpus)
    worst, slowest = 0.0, ""
    for name, raw in HOSTILE.items():
        start = time.perf_counter()
        classify(raw)
        took = time.perf_counter() - start
        if took > worst:
            worst, slowest = took, name
    print(
        f"1 MB hostile message, slowest of {len(HOSTILE)} shapes ({slowest}): "
        f"{worst * 1000:,.0f} ms to classify, {worst / typical:,.0f}× an average corpus "
        f"message ({typical * 1000:.1f} ms)"
    )


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
        _invited(ws)
        start = time.perf_counter()
        report = sync(ws.ledger(), ws.campaign, "bench", sources.maildir(work / "inbox"))
        first = time.perf_counter() - start
        start = time.perf_counter()
        again = sync(ws.ledger(), ws.campaign, "bench", sources.maildir(work / "inbox"))
        second = time.perf_counter() - start
        ws.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rate = report.new / first
    print(f"{report.new:,} replies synced and classified in {first:.1f} s: {rate:,.0f} msg/s")
    print(f"re-sync of the same Maildir: {again.new} new in {second:.2f} s")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())))
    _hostile_row(corpus)


if __name__ == "__main__":
    main()
