"""Start-up benchmark: `python -m bench.startup` (a measurement, not a test).

How long a command takes before it does anything, against khal (also Python, click and
icalendar), measured side by side in one run on this machine:
  - `khal --help`, the baseline (khal is installed into a venv of its own under
    `bench/out/khal-venv` on the first run: `pip install khal`);
  - `mailer --help`;
  - `mailer status --json` on the 532 offices of contacts.csv, all invited (a SQLite ledger
    filled once, into the local dev mail server, before timing).
Each command runs `--runs` times, interleaved, after one warm-up; the median wall time is
compared. Absolute figures move ×2–3 between machines here: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KHAL_VENV = ROOT / "bench" / "out" / "khal-venv"
TARGETS = {"mailer --help": 2.0, "mailer status --json": 4.0}  # within N× of khal --help


def _khal() -> Path:
    binary = KHAL_VENV / "bin" / "khal"
    if not binary.exists():
        print(f"installing khal into {KHAL_VENV} (once) …", file=sys.stderr)
        venv.create(KHAL_VENV, with_pip=True)
        subprocess.run(
            [str(KHAL_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "khal"],
            check=True,
        )
    return binary


def _ledger(work: Path, env: dict[str, str]) -> None:
    """532 offices imported and invited (through the dev mail server) into a fresh SQLite."""
    mailer = [sys.executable, "-m", "mailer"]
    subprocess.run([*mailer, "import", str(ROOT / "contacts.csv")], env=env, check=True,
                   cwd=work, stdout=subprocess.DEVNULL)  # fmt: skip
    subprocess.run([*mailer, "send", "invitations", "--devserver"], env=env, check=True,
                   cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _time(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    khal = _khal()
    mailer = str(Path(sys.executable).with_name("mailer"))
    with tempfile.TemporaryDirectory(prefix="mailer-startup-") as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{work / 'mailer.db'}",
            "MAILER_CAMPAIGN": str(ROOT / "schedules" / "egov-seminar-2559.toml"),
            "MAILER_TEMPLATES": str(ROOT / "templates"),
            "MAILER_MAILDIR": str(work / "maildir"),
            "SMTP_PORT": str(18025 + os.getpid() % 1000),
            "PYTHONDONTWRITEBYTECODE": "",
        }
        _ledger(work, env)
        commands = {
            "khal --help": [str(khal), "--help"],
            "mailer --help": [mailer, "--help"],
            "mailer status --json": [mailer, "status", "--json"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():  # warm-up: page cache, .pyc files
            _time(command, env, work)
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(_time(command, env, work))
    base = statistics.median(times["khal --help"])
    print(f"{'command':<24}{'median':>10}{'min':>10}{'× khal --help':>16}{'target':>9}")
    for name, found in times.items():
        median = statistics.median(found)
        ratio = median / base
        target = TARGETS.get(name)
        verdict = "" if target is None else ("ok" if ratio <= target else "MISSED")
        shown = f"≤{target:g}× {verdict}" if target else ""
        fastest = min(found) * 1000
        print(f"{name:<24}{median * 1000:>8.0f}ms{fastest:>8.0f}ms{ratio:>15.2f}×  {shown}")


if __name__ == "__main__":
    main()
