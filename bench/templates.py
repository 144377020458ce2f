"""Template benchmark: `python -m bench.templates [--letters 3000]`.

Renders each kind of letter (subject, text and HTML) for one office, with the templates
compiled in Jinja2's sandbox as mailer runs them and, for comparison, in a plain
`jinja2.Environment` with the same options and filters. The two are measured in turns
(CPU time, best of several rounds, so a busy shared machine counts less) and the difference is
what the sandbox costs per letter.
"""

from __future__ import annotations

import argparse
import os
import time
import timeit
from pathlib import Path
from unittest import mock

import jinja2

from mailer.campaign import load_campaign
from mailer.compose import Composer, letters
from mailer.invitees.importing import InviteeRecord
from mailer.versions import Change

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("invitation", "followup", "reminder", "update", "cancel")
OFFICE = InviteeRecord(
    "TH-50-agri",
    "สำนักงานเกษตรจังหวัดเชียงใหม่",
    "เรียน เกษตรจังหวัดเชียงใหม่",
    ("saraban.th50@agri.example",),
)
EXTRA = {"changes": [Change("when", "วันและเวลา", "เดิม", "ใหม่")]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--letters", type=int, default=3_000, help="letters per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    os.chdir(ROOT)
    campaign = load_campaign(Path("schedules/egov-seminar-2559.toml"))
    sandboxed = Composer(campaign, Path("templates"))
    with mock.patch.object(letters, "_Sandbox", jinja2.Environment):
        plain = Composer(campaign, Path("templates"))
        for kind in KINDS:
            plain.renderer(kind)  # compiled here, in the plain environment
    print(f"{'letter':12} {'plain µs':>9} {'sandbox µs':>11} {'cost µs':>8}")
    for kind in KINDS:
        best = {"plain": float("inf"), "sandbox": float("inf")}
        for _ in range(args.rounds):
            for name, composer in (("plain", plain), ("sandbox", sandboxed)):
                seconds = timeit.timeit(
                    lambda c=composer, k=kind: c.letter(OFFICE, k, EXTRA),
                    timer=time.process_time,  # CPU time: other processes' load counts less
                    number=args.letters,
                )
                best[name] = min(best[name], seconds / args.letters * 1e6)
        cost = best["sandbox"] - best["plain"]
        print(f"{kind:12} {best['plain']:9.1f} {best['sandbox']:11.1f} {cost:8.1f}")


if __name__ == "__main__":
    main()
