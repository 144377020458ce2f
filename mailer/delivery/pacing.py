"""Rate limits and back-off: how fast a run may send, and how it slows down when told to.

Limits are counted from the ledger (messages marked sent in the last minute / hour / day,
by any worker, in any run), so several workers and several runs share one budget, and a
daily cap spreads a batch across days instead of failing it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
SLOW_DOWN_CODES = frozenset({432, 450, 451, 452, 454})


@dataclass(frozen=True)
class RateLimits:
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None
    sessions: int = 4

    def windows(self) -> list[tuple[timedelta, int]]:
        pairs = [(MINUTE, self.per_minute), (HOUR, self.per_hour), (DAY, self.per_day)]
        return [(window, limit) for window, limit in pairs if limit]


# Published limits of common providers (conservative where the provider gives a range).
PRESETS: dict[str, RateLimits] = {
    "none": RateLimits(sessions=8),
    "generic": RateLimits(per_minute=60, per_hour=1000, sessions=2),
    "microsoft365": RateLimits(per_minute=30, per_day=10_000, sessions=3),
    "google-workspace": RateLimits(per_minute=60, per_day=2_000, sessions=3),
    "gmail": RateLimits(per_minute=20, per_day=500, sessions=1),
}


class DailyCapReached(Exception):
    def __init__(self, limit: int, resume_at: datetime) -> None:
        self.limit = limit
        self.resume_at = resume_at
        super().__init__(f"daily cap of {limit} reached; sending resumes after {resume_at}")


SentSince = Callable[[datetime, int], datetime | None]
"""(since, limit) → the time of the limit-th most recent send after `since`, or None."""


class Pacer:
    """Decides how long to wait before the next message."""

    def __init__(self, limits: RateLimits, sent_since: SentSince) -> None:
        self.limits = limits
        self.sent_since = sent_since
        self.min_interval = timedelta(0)
        self.slowdowns = 0

    def wait_before_next(self, now: datetime) -> timedelta:
        """Zero, or how long to wait; raises `DailyCapReached` rather than wait for hours."""
        wait = timedelta(0)
        for window, limit in self.limits.windows():
            oldest = self.sent_since(now - window, limit)
            if oldest is None:
                continue  # fewer than `limit` sends in the window
            until = oldest + window - now
            if window == DAY and until > timedelta(minutes=10):
                raise DailyCapReached(limit, oldest + window)
            wait = max(wait, until)
        return max(wait, self.min_interval)

    def slow_down(self) -> timedelta:
        """The server asked us to slow down (432, 450-454): halve the rate for the rest of
        the run and return a back-off pause with jitter."""
        self.slowdowns += 1
        self.min_interval = max(self.min_interval * 2, timedelta(milliseconds=500))
        self.min_interval = min(self.min_interval, timedelta(seconds=30))
        seconds = min(2**self.slowdowns, 60) * random.uniform(0.5, 1.0)
        return timedelta(seconds=seconds)
