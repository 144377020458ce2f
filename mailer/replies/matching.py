"""Which office a message is about, and whether it may answer for that office.

docs/design.md §6, "Only the office answers for the office": calendar UIDs are guessable and a
From or ATTENDEE line costs nothing to write, so a message *names* an office in several ways
(our thread, a calendar UID, a failed address, the sender) but *counts* by itself only when
it is tied to the office:

- a calendar reply or free-text answer: a reply in our thread (In-Reply-To/References name
  a Message-ID we sent that office — a Message-ID quoted in a body does not count), or from
  one of the office's addresses as sender or as the ATTENDEE who answers — unless the
  receiving server reports that the sender's domain failed DMARC (a forged From);
- a bounce: it names an address we sent to (a delivery sent or uncertain), and when it
  carries one of our Message-IDs, that message went to the same office.

Anything else names the office but goes to review with the reason (`Match.tied` False).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from mailer.campaign import Campaign
from mailer.delivery.reads import D, offices, went_out
from mailer.identity import looks_ours, read_uid
from mailer.replies.classify import Classification
from mailer.replies.tables import I
from mailer.replies.text import one_line

if TYPE_CHECKING:
    from mailer.delivery.ledger import Ledger

_SENT = ("sent", "uncertain")
_TEST_SAMPLE = "answers a --test-to sample, not an office's invitation"


def _split(addresses: str) -> list[str]:
    return [a.strip().lower() for a in re.split(r"[;,]", addresses or "") if a.strip()]


@dataclass(frozen=True)
class Directory:
    """What matching looks things up in, read once per sync."""

    threads: dict[str, str]  # our Message-ID → invitee_id
    addresses: dict[str, list[str]]  # address (contacts, or one we sent to) → invitee_ids
    ids: frozenset[str]
    sequences: dict[str, int]  # the latest SEQUENCE each office was sent
    sent_to: dict[str, frozenset[str]]  # address a delivery went to → invitee_ids
    coordinators: frozenset[str] = frozenset()  # Message-IDs of our rows to the coordinator

    @classmethod
    def read(cls, ledger: Ledger) -> Directory:
        found: dict[str, set[str]] = {}
        sent: dict[str, set[str]] = {}
        threads: dict[str, str] = {}
        sequences: dict[str, int] = {}
        with ledger.reads.connect() as conn:
            for invitee_id, emails in conn.execute(select(I.invitee_id, I.emails)):
                for address in _split(emails):
                    found.setdefault(address, set()).add(invitee_id)
            ids = frozenset(i for (i,) in conn.execute(select(I.invitee_id)))
            for message_id, invitee_id, state, recipients, delivered_to in conn.execute(
                select(D.message_id, D.invitee_id, D.state, D.recipients, D.delivered_to).where(
                    D.campaign_id == ledger.campaign_id,
                    offices(),  # not the coordinator's digest
                )
            ):
                threads[message_id] = invitee_id
                # the addresses it went to: the last attempt's (when it may have arrived)
                # and every address the server took on an earlier attempt (per address)
                went = _split(recipients) if state in _SENT else []
                for address in [*went, *_split(delivered_to)]:
                    sent.setdefault(address, set()).add(invitee_id)
                    found.setdefault(address, set()).add(invitee_id)
            for invitee_id, top in conn.execute(
                select(D.invitee_id, func.max(D.sequence))
                .where(D.campaign_id == ledger.campaign_id, went_out())
                .group_by(D.invitee_id)
            ):
                sequences[invitee_id] = int(top)
            own = frozenset(
                m
                for (m,) in conn.execute(
                    select(D.message_id).where(
                        D.campaign_id == ledger.campaign_id, D.invitee_id.is_(None)
                    )
                )
            )
        return cls(
            threads,
            {a: sorted(o) for a, o in found.items()},
            ids,
            sequences,
            {a: frozenset(o) for a, o in sent.items()},
            own,
        )

    def belongs(self, address: str, invitee_id: str) -> bool:
        return bool(address) and invitee_id in self.addresses.get(address, ())


@dataclass(frozen=True)
class Match:
    invitee_id: str | None  # the office the message names (None: no office, or several)
    matched_by: str | None  # thread | uid | bounce | sender
    note: str = ""  # why it does not count, or what it names
    tied: bool = False  # it may answer for the office by itself


def _cut(value: str) -> str:
    return one_line(value, 60)


def match(c: Classification, campaign: Campaign, directory: Directory) -> Match:
    """The office `c` names and whether it may answer for it: a bounce by its own rules;
    otherwise by our thread, then the calendar UID, then the sender's address."""
    if c.kind == "bounce":
        return _bounce(c, campaign, directory)
    thread = next((directory.threads[m] for m in c.thread_ids if m in directory.threads), None)
    uid_office, uid_note = _uid(c.uid, campaign, directory)
    if thread:
        return _in_thread(thread, uid_office, uid_note)
    if uid_note:
        return _foreign_uid(c, uid_note, directory)
    if uid_office:
        return _by_uid(c, uid_office, directory)
    return _by_sender(c, directory)


def _forged(c: Classification) -> str:
    return f"the receiving server says {_cut(c.dmarc_failed)} failed DMARC (a forged From?)"


def _in_thread(thread: str, uid_office: str | None, uid_note: str) -> Match:
    """A reply in an office's thread counts, unless its calendar UID says otherwise."""
    if uid_note or (uid_office and uid_office != thread):
        why = uid_note or f"its calendar UID names {uid_office}"
        return Match(thread, "thread", f"not counted: in {thread}'s thread, but {why}")
    return Match(thread, "thread", tied=True)


def _foreign_uid(c: Classification, uid_note: str, directory: Directory) -> Match:
    """Out of our threads, with a calendar UID that names none of our offices: at most the
    office its sender belongs to, never counted (and not even that for a --test-to sample)."""
    offices = directory.addresses.get(c.sender, [])
    if len(offices) == 1 and uid_note != _TEST_SAMPLE:
        return Match(offices[0], "sender", f"not counted: {uid_note}")
    return Match(None, None, uid_note)


def _by_uid(c: Classification, office: str, directory: Directory) -> Match:
    """Out of our threads, a calendar UID naming `office`: it counts when it comes from one
    of the office's addresses (as sender or as the ATTENDEE who answers) and is not forged."""
    if directory.belongs(c.sender, office) or directory.belongs(c.attendee, office):
        if c.dmarc_failed:
            return Match(office, "uid", f"not counted: {_forged(c)}")
        return Match(office, "uid", tied=True)
    who = f"from {_cut(c.sender) or 'no sender'}"
    if c.attendee and c.attendee != c.sender:
        who += f" (ATTENDEE {_cut(c.attendee)})"
    return Match(
        office, "uid",
        f"not counted: {who}, not an address of {office}, and not a reply in our thread",
    )  # fmt: skip


def _by_sender(c: Classification, directory: Directory) -> Match:
    """No thread and no calendar UID: the one office whose address sent it, if not forged."""
    offices = directory.addresses.get(c.sender, [])
    if len(offices) == 1:
        if c.dmarc_failed:
            return Match(offices[0], "sender", f"not counted: {_forged(c)}")
        return Match(offices[0], "sender", tied=True)
    if len(offices) > 1:
        return Match(None, None, f"{_cut(c.sender)} is shared by {', '.join(offices)}")
    return Match(None, None, "no thread, calendar UID or known address names an office")


def _uid(uid: str | None, campaign: Campaign, directory: Directory) -> tuple[str | None, str]:
    """The office a calendar UID names, or why it names none of ours."""
    if not uid:
        return None, ""
    found = read_uid(campaign, uid)
    if found is None:
        return None, f"its calendar UID {_cut(uid)} is not one of this campaign's"
    if found.test:
        return None, _TEST_SAMPLE
    if found.invitee_id in directory.ids:
        return found.invitee_id, ""
    return None, f"its calendar UID names no office we know ({_cut(found.invitee_id)})"


def _bounce(c: Classification, campaign: Campaign, directory: Directory) -> Match:
    """A bounce counts when it names an address we sent to and, when it carries one of our
    Message-IDs, that message went to the same office."""
    ids = list(dict.fromkeys([*c.thread_ids, *c.quoted_ids]))
    named = sorted({directory.threads[m] for m in ids if m in directory.threads})
    strangers = [m for m in ids if m not in directory.threads and looks_ours(campaign, m)]
    sent_to = sorted({o for a in c.failed_recipients for o in directory.sent_to.get(a, ())})
    listed = _cut(", ".join(c.failed_recipients))
    if len(named) > 1:
        return Match(None, None, f"not counted: it names the messages of {', '.join(named)}")
    if named:
        office = named[0]
        if not c.failed_recipients or office in sent_to:
            return Match(office, "thread", tied=True)
        return Match(
            office,
            "thread",
            f"not counted: it fails {listed}, which we never sent {office}'s message to",
        )
    only = sent_to[0] if len(sent_to) == 1 else None
    if strangers:
        return Match(
            only, "bounce" if only else None,
            f"not counted: it carries a Message-ID shaped like ours that we never sent "
            f"({_cut(strangers[0])}: a --test-to sample, or forged)",
        )  # fmt: skip
    if len(sent_to) > 1:
        return Match(None, None, f"{listed} was sent to {', '.join(sent_to)}")
    if only:
        return Match(only, "bounce", tied=True)
    known = sorted({o for a in c.failed_recipients for o in directory.addresses.get(a, ())})
    if len(known) == 1:
        return Match(
            known[0], "bounce", f"not counted: it fails {listed}, which we have not sent to"
        )
    if not c.failed_recipients:
        return Match(None, None, "no Message-ID of ours and no failed address")
    return Match(None, None, f"not counted: it fails {listed}, which we never sent to")
