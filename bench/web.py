"""Web benchmark: `python -m bench.web [--offices 99999]` (a measurement, not a test).

With N offices in the ledger (99,999 by default: the import takes up to 100,000 rows), each
with its invitation queued, served by one `mailer web` app on a real uvicorn on loopback,
it measures, in one run:
  - a static file the same server serves (`/static/web.css`): the baseline; and the
    dashboard's page itself served as a static page (the same bytes, the same server), so
    the dashboard's ratio to it is its work, not its size;
  - an office's answer page (GET, a different office each time);
  - the coordinator's dashboard, first view (logged in), and its refresh (`live.json`);
  - a filtered view, the first after an office answered (the board is being read again);
  - answer POSTs from 50 concurrent clients: 50 offices with their page open press send
    at the same moment (rounds of 50), and, apart, 50 clients each opening its page and
    answering at once (so the POSTs queue behind the others' page GETs too);
and prints p50/p99 of each and the ratios to the static page's. Absolute figures move ×2–3
between machines here: read the ratios. Goal (issue #13): the dashboard within 5× a static
page; no request over 1 s.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.__main__ import free_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-" + "k" * 40
PASSWORD = "bench-password-123"


def _campaign(target: Path) -> Path:
    """The shipped campaign moved to 2030, so every link still opens."""
    text = (ROOT / "schedules" / "egov-seminar-2559.toml").read_text(encoding="utf-8")
    target.write_text(text.replace("2016-11-22T", "2030-11-22T"), encoding="utf-8")
    return target


def _contacts(path: Path, count: int) -> list[str]:
    """`count` offices spread over the shipped list's 76 provinces and 7 agencies (so the
    matrix has as many lines as a province has offices of one agency), and their ids."""
    with (ROOT / "contacts.csv").open(encoding="utf-8", newline="") as handle:
        shipped = list(csv.DictReader(handle))
    ids = []
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(shipped[0]))
        writer.writeheader()
        for n in range(count):
            row = dict(shipped[n % len(shipped)])
            row["invitee_id"] = f"{row['invitee_id']}-{n:06d}"
            row["email"] = f"office{n:06d}@bench.example"
            writer.writerow(row)
            ids.append(row["invitee_id"])
    return ids


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


class _Served:
    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Served:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _timed(client: httpx.Client, url: str) -> float:
    start = time.perf_counter()
    answer = client.get(url)
    took = time.perf_counter() - start
    if answer.status_code != 200:
        raise SystemExit(f"GET {url}: {answer.status_code}")
    return took


def _form(client: httpx.Client, link: str) -> str:
    page = client.get(link)
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    if found is None:
        raise SystemExit(f"no form on {link}: {page.status_code}")
    return found.group(1)


def _send(client: httpx.Client, base: str, link: str, csrf: str) -> float:
    start = time.perf_counter()
    answer = client.post(link, data={"csrf": csrf, "choice": "accepted"}, headers={"Origin": base})
    took = time.perf_counter() - start
    if answer.status_code != 200:
        raise SystemExit(f"POST {link}: {answer.status_code}")
    return took


def _post_answer(base: str, link: str) -> float:
    """An office opens its page and answers: the POST's time."""
    with httpx.Client(timeout=60) as client:
        return _send(client, base, link, _form(client, link))


def _press(base: str, gate: threading.Barrier, client: httpx.Client, link: str, form: str) -> float:
    gate.wait()
    return _send(client, base, link, form)


def _burst(base: str, links: list[str], clients: int) -> list[float]:
    """`clients` offices have their page open and press send at the same moment, in
    rounds until every link answered: each POST's time."""
    took: list[float] = []
    for start in range(0, len(links), clients):
        batch = links[start : start + clients]
        sessions = [httpx.Client(timeout=60) for _ in batch]
        forms = [_form(c, link) for c, link in zip(sessions, batch, strict=True)]
        gate = threading.Barrier(len(batch))
        ready = [
            (gate, c, link, form) for c, link, form in zip(sessions, batch, forms, strict=True)
        ]
        with ThreadPoolExecutor(len(batch)) as pool:
            took += pool.map(lambda press: _press(base, *press), ready)
        for c in sessions:
            c.close()
    return took


class _Page:
    """A static page: the bytes it was given, as they are, by the same server."""

    body = b""

    async def serve(self, request: Any) -> Any:
        from starlette.responses import Response

        return Response(self.body, media_type="text/html; charset=utf-8")


def _login(client: httpx.Client, base: str) -> None:
    login = client.get(f"{base}/dashboard/login")
    token = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert token is not None
    client.post(
        f"{base}/dashboard/login", data={"csrf": token.group(1), "password": PASSWORD},
        headers={"Origin": base},
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offices", type=int, default=99_999)  # the import takes 100,000 rows
    parser.add_argument("--requests", type=int, default=100, help="GETs of each kind")
    parser.add_argument("--posts", type=int, default=200, help="answer POSTs in all")
    parser.add_argument("--clients", type=int, default=50, help="POSTs at once")
    parser.add_argument(
        "--database-url", default="", help="an empty PostgreSQL database (default: SQLite)"
    )
    args = parser.parse_args()

    from mailer.invitees.importing import import_contacts
    from mailer.settings import load_settings
    from mailer.web.app import create_app
    from mailer.web.links import RsvpLinks
    from mailer.web.login import hash_password
    from mailer.web.pages import Site
    from mailer.workspace import Workspace

    work = Path(tempfile.mkdtemp(prefix="mailer-bench-web-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ.update(
        DATABASE_URL=args.database_url or f"sqlite:///{work / 'mailer.db'}",
        MAILER_CAMPAIGN=str(_campaign(work / "campaign.toml")),
        MAILER_TEMPLATES=str(ROOT / "templates"),
        MAILER_PUBLIC_URL=base,
        MAILER_SECRET_KEY=KEY,
    )
    ws = Workspace(load_settings(os.environ, dotenv_path=None))
    contacts = work / "contacts.csv"
    ids = _contacts(contacts, args.offices)
    start = time.perf_counter()
    import_contacts(ws.engine, contacts)
    ws.ledger().enqueue(
        ((i, f"office{n:06d}@bench.example") for n, i in enumerate(ids)),
        "invitation",
        0,
        lambda i: f"<bench.{i}@bench.example>",
    )
    print(f"{args.offices:,} offices imported and queued in {time.perf_counter() - start:.1f} s")
    links = RsvpLinks(ws.settings.web, ws.ledger())
    site = Site(
        ws.ledger(), ws.campaign, ws.settings.templates_dir, KEY,
        password_hash=hash_password(PASSWORD), posts_per_link=10_000,
        posts_per_address=10_000_000,
    )  # fmt: skip
    step = max(1, args.offices // max(args.requests, args.posts))
    started = time.perf_counter()
    app = create_app(site, base)
    page = _Page()  # the dashboard's own page, kept as a static page of the same size
    app.add_route("/bench/dashboard.html", page.serve, methods=["GET"])
    with _Served(app, port), httpx.Client(timeout=120) as client:
        # The board read when the server starts is waited for first: measured beside it,
        # every figure (the baseline too) would carry its load.
        _login(client, base)
        _timed(client, f"{base}/dashboard/live.json")
        ready = time.perf_counter() - started
        static = [_timed(client, f"{base}/static/web.css") for _ in range(args.requests)]
        views = max(10, args.requests // 5)
        page.body = client.get(f"{base}/dashboard").content
        same_size = [_timed(client, f"{base}/bench/dashboard.html") for _ in range(views)]
        board = [_timed(client, f"{base}/dashboard") for _ in range(views)]
        live = [_timed(client, f"{base}/dashboard/live.json") for _ in range(views)]
        pages = [_timed(client, links(ids[(n * step) % len(ids)])) for n in range(args.requests)]
        changed = []
        for n in range(5):  # an office answers; the next view is the first after a change
            _post_answer(base, links(ids[(n * 7919 + 3) % len(ids)]))
            changed.append(_timed(client, f"{base}/dashboard?province=TH-50"))
        targets = [links(ids[(n * step + 1) % len(ids)]) for n in range(args.posts)]
        posts = _burst(base, targets, args.clients)
        again = [links(ids[(n * step + 2) % len(ids)]) for n in range(args.posts)]
        with ThreadPoolExecutor(args.clients) as pool:  # each: its page, then its answer
            mixed = list(pool.map(lambda link: _post_answer(base, link), again))
    print(f"the board read when the server starts: ready {ready:.1f} s after it started")
    base_p50, base_p99 = _percentiles(static)
    print(f"{'request':40} {'p50':>9} {'p99':>9} {'p50 ×static':>12} {'p99 ×static':>12}")
    measured = (
        ("static file (baseline)", static),
        (f"static page of {len(page.body) // 1000} kB", same_size),
        ("an office's answer page (GET)", pages),
        ("the dashboard, first view", board),
        ("the dashboard's refresh (live.json)", live),
        ("a filtered view, first after a change", changed),
        (f"answer POSTs, {args.clients} at once", posts),
        (f"  the same, amid {args.clients} pages' GETs", mixed),
    )
    for name, seconds in measured:
        p50, p99 = _percentiles(seconds)
        print(
            f"{name:40} {p50 * 1000:7.1f}ms {p99 * 1000:7.1f}ms "
            f"{p50 / base_p50:11.1f}× {p99 / base_p99:11.1f}×"
        )
    slowest = max(max(seconds) for _, seconds in measured)
    print(f"slowest request: {slowest * 1000:.0f} ms (goal: none over 1 s)", file=sys.stderr)
    ws.close()


if __name__ == "__main__":
    main()
