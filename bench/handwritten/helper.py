"""A `--workers` helper, run as `Workers` runs it, ending with `os._exit` or a normal exit."""

from __future__ import annotations

import time

# --- 5. os._exit at the end of a helper ----------------------------------------------------

# The helper as `Workers` starts it (`python -m mailer worker --json --after-go`), with
# `os._exit` turned into `sys.exit` when BENCH_EXIT=sys: the same code, a normal exit.
HELPER = (
    "import os, sys\n"
    "if os.environ.get('BENCH_EXIT') == 'sys':\n"
    "    os._exit = sys.exit\n"
    "sys.argv[0] = 'mailer'\n"
    "from mailer.cli import main\n"
    "main()\n"
)


def queue_round(env: dict[str, str]) -> None:
    """Queue the invitations to every imported office, as `send invitations` does before it
    drains (the event version, the server, one row per office)."""
    from mailer.identity import new_message_id
    from mailer.rounds.send import iter_recipients
    from mailer.settings import load_settings
    from mailer.versions import first_version
    from mailer.workspace import Workspace

    ws = Workspace(load_settings(env, dotenv_path=None))
    ledger = ws.ledger()
    ledger.guard_server(ws.settings.smtp.server_id, allow_new=True)
    first_version(ledger, ws.campaign.event)
    ledger.enqueue(
        iter_recipients(ws.engine),
        "invitation",
        ledger.campaign_state().sequence,
        lambda i: new_message_id(ws.campaign, i, "invitation"),
    )
    ws.close()


def helper_exit(env: dict[str, str], how: str) -> tuple[float, float, int]:
    """Run one helper over the queued round: (seconds from "go" to its report, seconds from
    its report to its exit, messages it sent)."""
    import json
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", HELPER, "worker", "--json", "--after-go"],
        env={**env, "BENCH_EXIT": how},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    time.sleep(2.0)  # started and waiting, as the helpers are while the round is queued
    start = time.perf_counter()
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    report = proc.stdout.readline()
    reported = time.perf_counter()
    proc.wait()
    ended = time.perf_counter()
    assert proc.returncode == 0, proc.returncode
    return reported - start, ended - reported, int(json.loads(report)["sent"])
