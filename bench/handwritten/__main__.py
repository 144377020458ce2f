"""The measurements: `python -m bench.handwritten` (see the package's docstring)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.handwritten.database import (
    CAMPAIGN,
    CoreLedger,
    fill_ledger,
    send_all,
)
from bench.handwritten.helper import helper_exit, queue_round
from bench.handwritten.mime import stdlib_message
from bench.handwritten.smtp import delayed_server, send_messages
from mailer.compose import Composer, OutgoingMail
from mailer.db import open_database
from mailer.delivery.ledger import Ledger

# --- the run ------------------------------------------------------------------------------


def _best(run: Callable[[], float], rounds: int) -> float:
    return min(run() for _ in range(rounds))


def _line(what: str, ours: float, library: float, unit: str = "µs") -> None:
    scale = 1e6 if unit == "µs" else 1e3 if unit == "ms" else 1.0
    print(f"  {what:<44} {ours * scale:9.1f} {unit} vs {library * scale:9.1f} {unit}"
          f"   library/mailer = {library / ours:5.2f}×")  # fmt: skip


def bench_mime(count: int, rounds: int) -> bytes:
    """Returns the invitation it composed (for the SMTP measurement)."""
    from mailer.campaign import load_campaign
    from mailer.invitees.importing import InviteeRecord
    from tests.conftest import CAMPAIGN as CAMPAIGN_FILE
    from tests.conftest import TEMPLATES

    composer = Composer(load_campaign(CAMPAIGN_FILE), TEMPLATES)
    office = InviteeRecord(
        "TH-50-agri",
        "สำนักงานเกษตรจังหวัดเชียงใหม่",
        "เรียน เกษตรจังหวัดเชียงใหม่",
        ("saraban.th50@agri.example", "agri.cm@prov.example"),
    )
    mail = OutgoingMail(office, "invitation", "<bench.1@ega.or.th>", 0)
    now = datetime.now(UTC)
    event = composer.campaign.event

    def shared() -> None:  # what both do before MIME: the letter and the calendar
        composer.letter(office, "invitation")
        composer.invites.build(
            office, event=event, uid="u@x", method="REQUEST", sequence=0, stamp=now
        )

    builds = {
        "ours": lambda: composer.compose(mail, now),
        "library": lambda: stdlib_message(composer, mail, now),
        "shared": shared,
    }
    best = dict.fromkeys(builds, float("inf"))
    for _ in range(rounds):  # in turns: a busy machine slows all three alike
        for name, build in builds.items():
            start = time.process_time()
            for _ in range(count):
                build()
            best[name] = min(best[name], (time.process_time() - start) / count)
    data = composer.compose(mail, now).data
    print(f"1. MIME (CPU per message, an invitation of {len(data):,} bytes)")
    _line("whole message (letter, calendar, MIME)", best["ours"], best["library"])
    common = best["shared"]
    _line(
        "MIME alone (letter, calendar taken out)", best["ours"] - common, best["library"] - common
    )
    return data


def _ledger_url(folder: Path, name: str, rows: int) -> str:
    url = f"sqlite:///{folder / name}.db"
    engine = open_database(url)
    fill_ledger(engine, rows)
    engine.dispose()
    return url


def bench_ledger(folder: Path, rows: int, rounds: int) -> None:
    print("2. Prepared on the driver's cursor vs SQLAlchemy Core (one worker, per message)")
    took = {Ledger: float("inf"), CoreLedger: float("inf")}
    for n in range(rounds):
        for kind in took:
            engine = open_database(_ledger_url(folder, f"{kind.__name__}-{n}", rows))
            start = time.perf_counter()
            send_all(kind(engine, CAMPAIGN), "bench")
            took[kind] = min(took[kind], (time.perf_counter() - start) / rows)
            engine.dispose()
    _line("claim (1/100 of one) + sending + settled", took[Ledger], took[CoreLedger])


def bench_smtp(count: int, data: bytes) -> None:
    print(f"3. SMTP, {len(data):,}-byte messages on one session (ms per message)")
    for delay in (0.0, 0.001, 0.005):
        with delayed_server(pipelining=True, delay=delay) as port:
            ours = send_messages(port, count, data, ours=True) / count
            library = send_messages(port, count, data, ours=False) / count
        with delayed_server(pipelining=False, delay=delay) as port:
            one_by_one = send_messages(port, count, data, ours=True) / count
        trip = f"round trip {2 * delay * 1e3:g} ms" if delay else "loopback"
        _line(f"{trip}: pipelined vs sendmail", ours, library, "ms")
        _line(f"{trip}: not pipelined vs sendmail", one_by_one, library, "ms")


def bench_exit(folder: Path, offices: int, runs: int) -> None:
    import shutil
    import subprocess
    import sys

    from tests.conftest import CAMPAIGN as CAMPAIGN_FILE
    from tests.conftest import TEMPLATES
    from tests.helpers import write_synthetic_contacts

    print(f"4. a --workers helper that sent {offices:,} messages: from its report to its exit")
    with delayed_server(pipelining=True, delay=0) as port:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder / 'queued.db'}",
               "MAILER_CAMPAIGN": str(CAMPAIGN_FILE), "MAILER_TEMPLATES": str(TEMPLATES),
               "SMTP_PORT": str(port), "MAILER_RATE_PRESET": "none"}  # fmt: skip
        write_synthetic_contacts(folder / "contacts.csv", offices)
        subprocess.run([sys.executable, "-m", "mailer", "import", str(folder / "contacts.csv")],
                       env=env, check=True, capture_output=True)  # fmt: skip
        queue_round(env)
        tails: dict[str, list[float]] = {"os": [], "sys": []}
        for n in range(runs):
            for how in tails:
                copy = folder / f"run-{n}-{how}.db"
                shutil.copy(folder / "queued.db", copy)
                _, tail, sent = helper_exit({**env, "DATABASE_URL": f"sqlite:///{copy}"}, how)
                assert sent == offices, sent
                tails[how].append(tail)
    _line("os._exit vs sys.exit", min(tails["os"]), min(tails["sys"]), "ms")


def main() -> None:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300, help="per measurement")
    parser.add_argument("--rows", type=int, default=2000, help="ledger rows per measurement")
    parser.add_argument("--offices", type=int, default=2000, help="messages a helper sends")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-handwritten-") as name:
        folder = Path(name)
        data = bench_mime(args.messages, args.rounds)
        bench_ledger(folder, args.rows, args.rounds)
        bench_smtp(args.messages // 3, data)
        bench_exit(folder, args.offices, args.rounds)


if __name__ == "__main__":
    main()
