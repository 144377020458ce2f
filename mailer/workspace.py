"""What every command works on, built once at the edge and handed down (docs/design.md §9).

The database, the campaign and the composer are opened lazily — and their modules imported
only then — so a command that needs none of them (e.g. `mailer devserver`, `--help`) neither
fails on a broken campaign file nor pays for importing what it does not use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from mailer.clock import Clock, utcnow
from mailer.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from mailer.campaign import Campaign
    from mailer.compose import Composer
    from mailer.delivery.dkim import DkimSigner
    from mailer.delivery.ledger import Ledger
    from mailer.delivery.transport import SmtpTransport


class Workspace:
    def __init__(
        self,
        settings: Settings,
        clock: Clock = utcnow,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.stopping = threading.Event()  # set on SIGTERM: sending stops between messages
        # A pause (rate limit, back-off) ends early when a stop is asked for.
        self.sleep = sleep if sleep is not None else self._wait

    def _wait(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    @cached_property
    def engine(self) -> Engine:
        from mailer.db import open_database

        return open_database(self.settings.database_url)

    @cached_property
    def campaign(self) -> Campaign:
        from mailer.campaign import load_campaign

        return load_campaign(self.settings.campaign_path)

    @cached_property
    def composer(self) -> Composer:
        """With personal links on (`MAILER_PUBLIC_URL`), every letter carries its office's."""
        from mailer.compose import Composer

        links = None
        if self.settings.web.links:
            from mailer.web.links import RsvpLinks

            links = RsvpLinks(self.settings.web, self.ledger())
        return Composer(self.campaign, self.settings.templates_dir, signer=self.signer, links=links)

    @cached_property
    def signer(self) -> DkimSigner | None:
        """The DKIM signer every composed message passes through (None: DKIM is not set)."""
        if self.settings.dkim is None:
            return None
        from mailer.delivery.dkim import DkimSigner

        return DkimSigner(self.settings.dkim, self.campaign.sender.email)

    def reload(self) -> None:
        """Read the campaign file and templates again (the scheduler does before each pass,
        so an edited event is what the next reminder carries)."""
        self.__dict__.pop("campaign", None)
        self.__dict__.pop("composer", None)
        self.__dict__.pop("signer", None)  # its d= may be the sender's domain

    def ledger(self) -> Ledger:
        from mailer.delivery.ledger import Ledger

        return Ledger(self.engine, self.campaign.id, self.clock)

    def transport(self) -> SmtpTransport:
        from mailer.delivery.transport import SmtpTransport

        return SmtpTransport(self.settings.smtp)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
