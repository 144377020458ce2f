"""What sending works with, handed in by its caller: `DeliveryContext`, and `connected`,
the one way to open an SMTP session for a ledger (the server guard included).

Nothing here reads the workspace or the offices' answers: `mailer.rounds.context` builds
the context from the workspace, says through `wanted` which offices a kind of message is
still for (a reminder is no longer for an office that declined meanwhile), and hands in
through `digest` what the coordinator's digest says, computed when it is composed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from mailer.clock import Clock, utcnow
from mailer.compose import Composer
from mailer.delivery.ledger import Ledger
from mailer.delivery.pacing import RateLimits
from mailer.delivery.transport import SmtpTransport
from mailer.kinds import LedgerKind

LEASE = timedelta(minutes=5)

Wanted = Callable[[LedgerKind], Callable[[str], bool]]
"""For a kind of message, whether an office (by invitee id) is still to receive it. Asked
again for every batch a worker claims, so an answer that arrives during a run counts."""

DigestValues = Callable[[LedgerKind], Mapping[str, object]]
"""For a digest row's kind (`digest:<day>`), the values its templates receive, read from the
ledger as it stands when the message is composed (`mailer.rounds.digest`)."""

Confirmation = Callable[[str, int], Mapping[str, object]]
"""For a `confirm:<n>` row, the office's n-th page answer as its templates tell it
(`mailer.replies.online.confirmation`), by invitee id and n."""


@dataclass(frozen=True)
class DeliveryContext:
    """The ledger to drain, how to compose a row's message (`composer`: its campaign gives
    the message kinds, the time zone, and the event before any version is stored), how to
    open the SMTP session, the settings that pace and stop a run, and `stopping` (set on
    SIGTERM: sending stops between messages; a pause ends early)."""

    ledger: Ledger
    composer: Composer
    transport: Callable[[], SmtpTransport]
    limits: RateLimits
    max_failures: int  # in a row: then the run pauses (MAILER_MAX_FAILURES)
    smtp_timeout: float  # seconds (SMTP_TIMEOUT)
    clock: Clock = utcnow
    stopping: threading.Event = field(default_factory=threading.Event)
    sleep: Callable[[float], None] | None = None  # None: wait on `stopping`
    wanted: Wanted | None = None  # None: every row is still wanted
    digest: DigestValues | None = None  # None: a digest row cannot be composed (fails)
    confirmation: Confirmation | None = None  # None: a confirm row cannot be composed (fails)

    @property
    def lease(self) -> timedelta:
        """How long a worker holds a claimed row: longer than one SMTP exchange can take
        (connect, MAIL…DATA, the message, its answer: each up to the timeout), so no other
        worker takes a row still in hand."""
        return max(LEASE, timedelta(seconds=4 * self.smtp_timeout + 60))

    def pause(self, seconds: float) -> None:
        if self.sleep is not None:
            self.sleep(seconds)
        else:
            self.stopping.wait(seconds)


@contextlib.contextmanager
def connected(ctx: DeliveryContext, *, allow_new: bool = False) -> Iterator[SmtpTransport]:
    """An open SMTP session for `ctx.ledger`, closed on the way out. A server other than
    the one this ledger sent through before is refused unless `allow_new` (`--new-server`);
    an unreachable server raises `TransportError` before anything is queued or marked."""
    with ctx.transport() as transport:
        ctx.ledger.guard_server(transport.server_id, allow_new=allow_new)
        yield transport
