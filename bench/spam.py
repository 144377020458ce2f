"""Spam-filter scores of every kind of letter: `python -m bench.spam`.

Composes one message of each kind the campaign sends — the invitation, each reminder rule,
an update (the event moved by two hours) and a cancellation — for one office, with the
product's own Composer, and scores each one, offline, with what Debian's mail servers run:

  rspamd        Debian's `rspamd`, started here for the length of the run with a configuration
                in a temporary directory: one worker on a Unix socket, in a network namespace of
                its own when the system allows it (`unshare -n`), every module that asks DNS,
                the web or redis switched off, and DNS pointed at a port nobody answers. Only
                the content is judged: no sending host, no SPF/DKIM/DMARC, no blocklists.
  SpamAssassin  `spamassassin -L -t` (local tests only), with a throw-away HOME.

Prints, per message, each scanner's total and the rules that carry points, and what made
rspamd's R_MIXED_CHARSET: its chartable module logs every word's "badness", and the words
are split into those that mix scripts or carry invisible or Latin-1 characters (ours to fix)
and plain Thai words, whose vowel and tone marks rspamd 3.4 counts as diacritics.
A measurement, not a test: nothing here runs in `make test`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailer.campaign import Campaign, load_campaign
from mailer.compose import Composer, OutgoingMail
from mailer.invitees.importing import read_contacts
from mailer.versions import Snapshot, diff

ROOT = Path(__file__).resolve().parent.parent
# Modules that would ask DNS, fetch maps from the web, need redis, or judge the sending host.
OFFLINE = (
    "arc", "asn", "bimi", "dkim", "dmarc", "emails", "fuzzy_check", "greylist", "hfilter",
    "history_redis", "multimap", "neural", "phishing", "ratelimit", "rbl", "replies",
    "reputation", "rspamd_update", "spf", "surbl", "url_redirector", "whitelist",
)  # fmt: skip
RSPAMD_CONF = """\
.include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}}
logging {{
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    .include "$CONFDIR/logging.inc"
    debug_modules = ["chartable"];
}}
worker "normal" {{
    bind_socket = "{socket} mode=0600";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}}
"""
OPTIONS_INC = """\
dns {{ nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 1; }}
hs_cache_dir = "{cache}";
"""
WORD_LOG = re.compile(r"<(\w+)>; chartable; \S+: word (.*), badness: ([\d.]+)$")
TASK_LOG = re.compile(r"<(\w+)>; task; rspamd_task_write_log: id: <([^>]*)>")
THAI = re.compile(r"[\u0e00-\u0e7f]")


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    message_id: str
    sender: str
    recipient: str


@dataclass
class Score:
    total: float
    rules: list[tuple[str, float]]  # the rules that carry points, largest first
    action: str = ""


@dataclass
class WordReport:
    """rspamd's chartable log for one message: every word and its badness."""

    words: list[tuple[str, float]] = field(default_factory=list)

    @property
    def ours(self) -> list[tuple[str, float]]:
        """Words that score more than their Thai vowel and tone marks explain: mixed scripts,
        Latin-1 letters, digits inside a Thai word. These come from our text and can be fixed."""
        return [(w, b) for w, b in self.words if b > _thai_mark_badness(w) + 1e-9]

    @property
    def thai_marks(self) -> float:
        return sum(min(b, _thai_mark_badness(w)) for w, b in self.words)


def _thai_mark_badness(word: str) -> int:
    """What rspamd 3.4 gives a word for its Thai non-spacing marks alone: one a mark (SARA AM
    counts, NFKC splits it into NIKHAHIT + SARA AA), at most 4, none past 10 characters."""
    if len(word) > 10:
        return 0
    marks = sum(1 for c in word if THAI.match(c) and unicodedata.category(c) == "Mn")
    return min(marks, 4)


# ---------------------------------------------------------------- the letters


def samples(
    campaign: Campaign, composer: Composer, contacts: Path, invitee_id: str
) -> list[Sample]:
    records = read_contacts(contacts).records
    invitee = next((r for r in records if r.invitee_id == invitee_id), None)
    if invitee is None:
        sys.exit(f"{invitee_id} is not in {contacts}")
    now = datetime.now(UTC)  # dated today, as a real message would be
    event = campaign.event
    moved = replace(
        event, start=event.start + timedelta(hours=2), end=event.end + timedelta(hours=2)
    )
    changes = diff(Snapshot.of(event), Snapshot.of(moved), campaign.timezone)
    wanted: list[tuple[str, str, int, str, dict[str, object]]] = [
        (rule.ledger_kind, rule.template, 0, "REQUEST", {}) for rule in campaign.rules
    ]
    wanted += [("update", "update", 1, "REQUEST", {"changes": changes})]
    wanted += [("cancel", "cancel", 2, "CANCEL", {"changes": []})]
    out = []
    for name, template, sequence, method, extra in wanted:
        message_id = f"<bench-spam.{name.replace(':', '.')}@{campaign.uid_domain}>"
        mail = OutgoingMail(invitee, template, message_id, sequence, method, extra=extra)
        composed = composer.compose(mail, now)
        out.append(
            Sample(
                name,
                composed.data,
                message_id.strip("<>"),
                composed.envelope_from,
                composed.recipients[0],
            )
        )
    return out


# ---------------------------------------------------------------- rspamd


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


class Rspamd:
    """A private rspamd: its own configuration, database, log and socket in `work`."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.socket = work / "rspamd.sock"
        self.log = work / "rspamd.log"
        self.isolated = _can_unshare()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait: float = 240) -> None:
        local = self.work / "local.d"
        local.mkdir(parents=True)
        for sub in ("db", "run"):
            (self.work / sub).mkdir()
        cache = Path(tempfile.gettempdir()) / "mailer-bench-spam-hyperscan"  # kept: saves ~1 min
        cache.mkdir(exist_ok=True)
        (self.work / "rspamd.conf").write_text(RSPAMD_CONF.format(socket=self.socket))
        (local / "options.inc").write_text(OPTIONS_INC.format(cache=cache))
        for module in OFFLINE:
            (local / f"{module}.conf").write_text("enabled = false;\n")
        command = ["rspamd", "--no-fork", "-c", str(self.work / "rspamd.conf")]
        if os.geteuid() == 0:
            command.append("--insecure")  # run the workers as root: this is a throw-away copy
        for name, sub in (
            ("LOCAL_CONFDIR", ""),
            ("DBDIR", "db"),
            ("RUNDIR", "run"),
            ("LOGDIR", ""),
        ):
            command.append(f"--var={name}={self.work / sub}")
        if self.isolated:
            command = ["unshare", "--net", "--", *command]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=(self.work / "stderr").open("wb")
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rspamd exited: {(self.work / 'stderr').read_text()[-800:]}")
            try:
                if self._request("GET", "/ping") == b"pong\r\n":
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"rspamd did not answer on {self.socket} within {wait:.0f} s")

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        conn = _UnixHTTP(self.socket)
        try:
            conn.request(method, path, body=body)
            return conn.getresponse().read()
        finally:
            conn.close()

    def check(self, sample: Sample) -> Score:
        conn = _UnixHTTP(self.socket)
        headers = {"From": sample.sender, "Rcpt": sample.recipient}  # the SMTP envelope
        try:
            conn.request("POST", "/checkv2", sample.data, headers)
            result = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        symbols = result.get("symbols", {})
        rules = [(name, s.get("score", 0.0)) for name, s in symbols.items() if s.get("score")]
        rules.sort(key=lambda r: -abs(r[1]))
        return Score(result.get("score", 0.0), rules, result.get("action", ""))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def words(self) -> dict[str, WordReport]:
        """Message-ID → the chartable module's words (read after `stop`: the log is then
        complete)."""
        by_task: dict[str, WordReport] = {}
        message_of: dict[str, str] = {}
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if m := WORD_LOG.search(line):
                by_task.setdefault(m[1], WordReport()).words.append((m[2], float(m[3])))
            elif m := TASK_LOG.search(line):
                message_of[m[1]] = m[2]
        return {message_of[t]: report for t, report in by_task.items() if t in message_of}


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


# ---------------------------------------------------------------- SpamAssassin

SA_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s")
SA_TOTAL = re.compile(r"Content analysis details:\s+\((-?[\d.]+) points")


def spamassassin(sample: Sample, home: Path) -> Score:
    run = subprocess.run(
        ["spamassassin", "-L", "-t", "-x"],
        input=sample.data,
        capture_output=True,
        env={**os.environ, "HOME": str(home)},
        timeout=300,
    )
    report = run.stdout.decode("utf-8", "replace")
    total = SA_TOTAL.search(report)
    if total is None:
        raise RuntimeError(f"spamassassin gave no report: {run.stderr.decode()[-800:]}")
    details = report[total.end() :]
    rules = [(m[2], float(m[1])) for line in details.splitlines() if (m := SA_RULE.match(line))]
    rules.sort(key=lambda r: -abs(r[1]))
    return Score(float(total[1]), rules)


# ---------------------------------------------------------------- the report


def _rules(score: Score, top: int) -> str:
    shown = [f"{name} {points:+.2f}" for name, points in score.rules[:top]]
    return ", ".join(shown) or "no rule carries points"


def _chartable(report: WordReport | None) -> str:
    if report is None or not report.words:
        return "    R_MIXED_CHARSET words: none logged"
    ours = report.ours
    n = len(report.words)
    lines = [
        f"    R_MIXED_CHARSET: {n} words, badness {report.thai_marks:.0f} from the vowel and tone"
        f" marks of plain Thai words ({report.thai_marks / n:.2f} a word);"
        f" {len(ours)} word(s) scoring more (mixed scripts, Latin-1, digits inside Thai)"
    ]
    for (word, badness), count in Counter(ours).most_common(10):
        odd = sorted({unicodedata.name(c, f"U+{ord(c):04X}") for c in word if ord(c) > 127})
        odd = [name for name in odd if not name.startswith("THAI")]
        why = ", ".join(odd) or "digits inside a Thai word"
        shown = word if word.isprintable() else ascii(word)
        lines.append(f"      {count}× {shown} (badness {badness:.2f}: {why})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--campaign", type=Path, default=ROOT / "schedules" / "egov-seminar-2559.toml"
    )
    parser.add_argument("--templates", type=Path, default=ROOT / "templates")
    parser.add_argument("--contacts", type=Path, default=ROOT / "contacts.csv")
    parser.add_argument("--invitee", default="TH-50-agri", help="whose letters (invitee_id)")
    parser.add_argument("--top", type=int, default=6, help="rules shown per message")
    parser.add_argument("--save", type=Path, help="also write each message here as NAME.eml")
    args = parser.parse_args()
    campaign = load_campaign(args.campaign)
    letters = samples(campaign, Composer(campaign, args.templates), args.contacts, args.invitee)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for s in letters:
            (args.save / f"{s.name.replace(':', '-')}.eml").write_bytes(s.data)
    have_rspamd = shutil.which("rspamd") is not None
    have_sa = shutil.which("spamassassin") is not None
    if not (have_rspamd or have_sa):
        sys.exit(
            "Neither rspamd nor SpamAssassin is installed. On Debian: "
            "apt-get install -y rspamd spamassassin"
        )
    work = Path(tempfile.mkdtemp(prefix="mailer-bench-spam-"))
    rspamd_scores: dict[str, Score] = {}
    sa_scores: dict[str, Score] = {}
    words: dict[str, WordReport] = {}
    try:
        if have_rspamd:
            server = Rspamd(work / "rspamd")
            mode = (
                "own network namespace" if server.isolated else "no namespace: DNS to 127.0.0.1:9"
            )
            print(f"starting rspamd ({mode}; the first start compiles its rules, ~1 min)…")
            started = time.monotonic()
            try:
                server.start()
                print(f"rspamd ready in {time.monotonic() - started:.0f} s")
                for s in letters:
                    rspamd_scores[s.name] = server.check(s)
            finally:
                server.stop()
            words = server.words()
        else:
            print("rspamd is not installed (apt-get install -y rspamd): its scores are skipped")
        if have_sa:
            (work / "home").mkdir()
            for s in letters:
                sa_scores[s.name] = spamassassin(s, work / "home")
        else:
            print("SpamAssassin is not installed (apt-get install -y spamassassin): skipped")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{len(letters)} letters to {args.invitee}, {campaign.id}:")
    for s in letters:
        print(f"\n{s.name} ({len(s.data):,} bytes)")
        if s.name in rspamd_scores:
            r = rspamd_scores[s.name]
            print(f"  rspamd       {r.total:5.2f}  ({r.action}) {_rules(r, args.top)}")
            print(_chartable(words.get(s.message_id)))
        if s.name in sa_scores:
            a = sa_scores[s.name]
            print(f"  SpamAssassin {a.total:5.2f}  {_rules(a, args.top)}")
    if rspamd_scores:
        print("\nrspamd actions: greylist at 4, add header at 6, reject at 15 (Debian defaults).")


if __name__ == "__main__":
    main()
