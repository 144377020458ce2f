"""Delivery benchmark: `make bench` (or `python -m bench --invitees 10000`).

Measures, in one run, on this machine, over loopback into Postfix's `smtp-sink`:
  (a) the full pipeline — `mailer send invitations` (ledger claim, compose with iCalendar,
      SMTP, record) — with 1 worker and with `--workers 2`;
  (b) the naive baseline (bench/naive.py): a fresh EmailMessage and a fresh VTIMEZONE per
      invitee, one SMTP session, no ledger;
  (c) Postfix's `smtp-source` C client with messages of the same size: the machine's ceiling.
and prints messages/second, the ratios (a)/(b) and (a)/(c), and peak memory.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURE = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "elapsed = time.perf_counter() - start\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(code, elapsed, peak)\n"
)


@dataclass
class Result:
    name: str
    messages: int
    seconds: float
    peak_kib: int | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_tool(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/lib/postfix/sbin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    print(f"{name} not found; installing Debian's postfix package …", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postfix"], check=True, env=env)
    return find_tool(name)


def write_contacts(path: Path, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["invitee_id", "organisation", "salutation", "email"])
        for n in range(count):
            writer.writerow(
                [
                    f"B-{n:06d}",
                    f"สำนักงานพัฒนาธุรกิจการค้าจังหวัดทดสอบที่ {n}",
                    f"เรียน ผู้อำนวยการสำนักงานพัฒนาธุรกิจการค้าจังหวัดทดสอบที่ {n}",
                    f"office{n:06d}@bench.example",
                ]
            )


def measured(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    code, elapsed, peak = int(out[0]), float(out[1]), int(out[2])
    if code != 0:
        raise SystemExit(f"{' '.join(command)} exited {code}")
    return elapsed, peak


def copy_db(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--invitees", type=int, default=10_000)
    parser.add_argument("--naive", type=int, default=2_000, help="messages for the slow baseline")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.chdir(ROOT)
    sink_bin, source_bin = find_tool("smtp-sink"), find_tool("smtp-source")
    work = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
    port = free_port()
    sink = subprocess.Popen(
        [sink_bin, "-u", "nobody", f"127.0.0.1:{port}", "1024"], stderr=subprocess.DEVNULL
    )
    time.sleep(0.3)
    try:
        contacts = work / "contacts.csv"
        write_contacts(contacts, args.invitees)
        base = work / "base.db"
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{base}",
            "SMTP_PORT": str(port),
            "MAILER_RATE_PRESET": "none",
        }
        mailer = [sys.executable, "-m", "mailer"]
        elapsed, _ = measured([*mailer, "import", str(contacts)], env)
        print(f"import of {args.invitees:,} invitees: {elapsed:.1f} s")
        results = []
        for workers in (1, args.workers):
            db = work / f"run-{workers}.db"
            copy_db(base, db)
            run_env = {**env, "DATABASE_URL": f"sqlite:///{db}", "MAILER_MAX_SESSIONS": "8"}
            command = [*mailer, "send", "invitations", "--workers", str(workers)]
            elapsed, peak = measured(command, run_env)
            results.append(Result(f"(a) mailer, {workers} worker(s)", args.invitees, elapsed, peak))
        out = subprocess.run(
            [sys.executable, "-m", "bench.naive", str(contacts), str(port), str(args.naive)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        naive = Result("(b) naive baseline", int(out[0]), float(out[1]))
        sample = _sample_size(env)
        start = time.perf_counter()
        subprocess.run(
            [source_bin, "-s", "2", "-m", str(args.invitees), "-l", str(sample),
             "-f", "bench@ega.example", "-t", "office@bench.example", f"127.0.0.1:{port}"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        ceiling = Result(
            "(c) smtp-source (C), 2 sessions", args.invitees, time.perf_counter() - start
        )
    finally:
        sink.terminate()
        sink.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nmessage size ≈ {sample:,} bytes; {args.invitees:,} invitees; {os.cpu_count()} cores\n"
    )
    print(f"{'':38} {'msg/s':>9} {'seconds':>9} {'peak RSS':>10}")
    for r in [*results, naive, ceiling]:
        peak = f"{r.peak_kib / 1024:.0f} MB" if r.peak_kib else ""
        print(f"{r.name:38} {r.rate:9.0f} {r.seconds:9.2f} {peak:>10}")
    best = max(results, key=lambda r: r.rate)
    print(f"\n(a)/(b) = {best.rate / naive.rate:.1f}×   (a)/(c) = {best.rate / ceiling.rate:.2f}")


def _sample_size(env: dict[str, str]) -> int:
    """Bytes of one composed invitation, so smtp-source sends messages of the same size."""
    code = (
        "from datetime import UTC, datetime\n"
        "from pathlib import Path\n"
        "from mailer.campaign import load_campaign\n"
        "from mailer.compose import Composer, OutgoingMail\n"
        "from mailer.invitees.importing import InviteeRecord\n"
        "c = Composer(load_campaign(Path('schedules/egov-seminar-2559.toml')), Path('templates'))\n"
        "i = InviteeRecord('B-1', 'สำนักงานทดสอบ', 'เรียน สำนักงานทดสอบ', ('o@bench.example',))\n"
        "print(len(c.compose(OutgoingMail(i, 'invitation', '<b@x>', 0), datetime.now(UTC)).data))\n"
    )
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True).stdout)  # fmt: skip


if __name__ == "__main__":
    main()
