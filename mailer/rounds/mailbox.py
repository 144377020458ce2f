"""The scheduler keeps the coordinator's replies current by itself (issue #14): it runs a
`MailboxWatcher` (IMAP IDLE, else a poll every `[replies] poll_minutes`; a Maildir named by
`[replies] maildir` is polled), records every sync in `scheduler_state` for
`mailer scheduler status`, and reads the mailbox once more right before a reminder round
chooses its audience. When that sync fails and the last good one is older than
`[replies] max_sync_age_minutes`, the round waits (it stays due, inside its catch-up window)
or, with `when_stale = "send"`, goes anyway — and the log says which.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from mailer.campaign import Rule
from mailer.replies.watch import Mailbox, MailboxWatcher, Source, Timing, WatchState
from mailer.rounds.standby import record_sync
from mailer.workspace import Workspace

Log = Callable[[str], None]
Gate = Callable[[Rule], str | None]  # None: the round goes; else why it waits


def mailbox_source(ws: Workspace) -> Source | None:
    """The coordinator's mailbox: the campaign's Maildir if it names one, else the IMAP
    folder of the settings if IMAP_HOST is set, else none (then `replies sync` by hand)."""
    if ws.campaign.replies.maildir is not None:
        return ws.campaign.replies.maildir
    if ws.settings.imap.host:
        return ws.settings.imap
    return None


def start_watcher(ws: Workspace, log: Log) -> MailboxWatcher | None:
    """A running watcher of the coordinator's mailbox (None when none is configured)."""
    source = mailbox_source(ws)
    if source is None:
        log(
            "replies: no mailbox to read (set IMAP_HOST or [replies] maildir); answers count "
            "only after `mailer replies sync`"
        )
        return None
    policy = ws.campaign.replies
    box = Mailbox(ws.ledger(), ws.campaign, source, ws.settings.database_url)
    timing = Timing(
        poll=timedelta(minutes=policy.poll_minutes),
        idle_renew=timedelta(minutes=policy.idle_minutes),
    )
    engine, campaign_id = ws.engine, ws.campaign.id

    def persist(state: WatchState) -> None:
        record_sync(
            engine,
            campaign_id,
            ok_at=state.last_good_sync,
            error=state.last_error,
            error_at=state.last_error_at,
        )

    watcher = MailboxWatcher(box, log, timing, on_status=persist)
    watcher.start()
    return watcher


def replies_gate(ws: Workspace, watcher: MailboxWatcher, log: Log) -> Gate:
    """What the due pass asks before a reminder round chooses its audience: the mailbox is
    read at once; a round waits (or, with `when_stale = "send"`, goes with a warning) when
    the last good read is older than the campaign allows."""
    policy = ws.campaign.replies
    limit = timedelta(minutes=policy.max_sync_age_minutes)

    def gate(rule: Rule) -> str | None:
        if rule.kind != "reminder":
            return None
        state = watcher.sync_now()
        if not state.stale(limit, ws.clock()):
            return None
        when = (
            f"{state.last_good_sync.astimezone(ws.campaign.timezone):%Y-%m-%d %H:%M}"
            if state.last_good_sync
            else "never"
        )
        said = (
            f"the replies were last read {when} (limit {policy.max_sync_age_minutes} min; "
            f"{state.last_error or 'no error recorded'})"
        )
        if policy.when_stale == "send":
            log(f"round {rule.id}: sent although {said}: its audience may be out of date")
            return None
        return (
            f"waits: {said}; it goes as soon as the mailbox is read, until its catch-up window "
            'ends ([replies] when_stale = "send" sends it anyway)'
        )

    return gate
