"""The signed token of an office's personal link: it names the campaign, the office and the
office's link version (`mailer.web.store`), signed with `MAILER_SECRET_KEY` (itsdangerous,
HMAC-SHA256). Its expiry is not written in it: a link stops opening `grace_days` after the
event as its current version ends (`mailer.web.pages.Office.expired`), so moving the event
later keeps the links alive."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "mailer-rsvp-link"
_SHAPE = re.compile(r"[A-Za-z0-9_.-]{10,400}")

Problem = Literal["malformed", "forged", "revoked", "expired", "unknown", "rate", "form"]


class TokenProblem(Exception):
    """Why a link (or a form posted from it) is refused; `problem` picks the page shown."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem)
        self.problem: Problem = problem


@dataclass(frozen=True)
class LinkClaim:
    invitee_id: str
    version: int


class Tokens:
    """Makes and reads the links of one campaign."""

    def __init__(self, secret: str, campaign_id: str) -> None:
        self.campaign_id = campaign_id
        self._serializer = URLSafeSerializer(
            secret, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )

    def make(self, invitee_id: str, version: int) -> str:
        return str(self._serializer.dumps([self.campaign_id, invitee_id, version]))

    def read(self, token: str) -> LinkClaim:
        """The office and version a token names; `TokenProblem` "malformed" (not a token's
        shape), or "forged" (a bad signature, or a token of another campaign)."""
        if not _SHAPE.fullmatch(token) or "." not in token:
            raise TokenProblem("malformed")
        try:
            data = self._serializer.loads(token)
        except BadSignature:
            raise TokenProblem("forged") from None
        shaped = (
            isinstance(data, list)
            and len(data) == 3
            and all(isinstance(item, str) for item in data[:2])
            and isinstance(data[2], int)
        )
        if not shaped:
            raise TokenProblem("malformed")
        campaign_id, invitee_id, version = data
        if campaign_id != self.campaign_id:
            raise TokenProblem("forged")
        return LinkClaim(invitee_id, version)
