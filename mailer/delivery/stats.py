"""What a drain reports: each message's outcome as it goes, and the run's totals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, dataclass, field

from mailer.models import DeliveryState

S = DeliveryState
STOPPED = "stopped on request; the rest stay queued"
SKIPPED = "skipped"  # an outcome, not a failure: recorded as failed with the reason


@dataclass(frozen=True)
class Outcome:
    invitee_id: str
    state: str
    reply: str
    code: int = 0
    delivery_id: int = 0


Progress = Callable[[Outcome], None]


@dataclass
class DrainStats:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    uncertain: int = 0
    recovered_uncertain: int = 0
    stopped: str | None = None
    # Every outcome but `sent` (what the coordinator must look at). The sent ones are only
    # counted: a run of 100,000 messages holds no list of them.
    problems: list[Outcome] = field(default_factory=list)
    # Deliveries whose latest outcome in this run is retry_wait: "to retry later" counts
    # these, not every retry_wait outcome (one retried and sent in the same run is sent).
    waiting: set[int] = field(default_factory=set)

    def summary(self) -> dict[str, object]:
        keys = ("sent", "retry", "failed", "uncertain", "recovered_uncertain", "stopped")
        found: dict[str, object] = {key: getattr(self, key) for key in keys}
        found["problems"] = [list(astuple(problem)) for problem in self.problems]
        return found

    def count(self, outcome: Outcome) -> None:
        if outcome.delivery_id in self.waiting:  # a retry settled in the same run
            self.waiting.discard(outcome.delivery_id)
            self.problems = [p for p in self.problems if p.delivery_id != outcome.delivery_id]
        if outcome.state != S.sent:
            self.problems.append(outcome)
        if outcome.state == S.retry_wait:
            self.waiting.add(outcome.delivery_id)
        self.retry = len(self.waiting)
        self.sent += outcome.state == S.sent
        self.failed += outcome.state == S.failed
        self.uncertain += outcome.state == S.uncertain

    def add(self, other: DrainStats) -> None:
        """Add another drain's counts (a helper's, or an earlier pass of `work_forever`)."""
        for key in COUNTED:
            setattr(self, key, getattr(self, key) + getattr(other, key))


COUNTED = ("sent", "retry", "failed", "uncertain", "recovered_uncertain")
