"""One email address as mailer sends to it: valid, and ASCII on the wire.

mailer does not use SMTPUTF8 (RFC 6531): an address with non-ASCII letters before the @ is
refused where it is read (the invitee list, the campaign file), never at send time. An
internationalised domain (`a@ไทย.ไทย`) is fine: it is kept in its ASCII (punycode) form,
`a@xn--o3cw4h.xn--o3cw4h`, which every SMTP server accepts.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class AddressProblem(ValueError):
    """Why a text is not an address mailer can send to (the address itself not repeated)."""


class NotAnAddress(AddressProblem):
    pass


class NeedsSmtpUtf8(AddressProblem):
    """A non-ASCII local part: only a server offering SMTPUTF8 could take it."""


def ascii_address(text: str) -> str:
    """The address in its ASCII form (IDN domain → punycode); raises `AddressProblem`."""
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise NotAnAddress(f"is not an email address ({str(exc)[:200]})") from exc
    if valid.ascii_email is None:
        raise NeedsSmtpUtf8(
            "has letters before the @ that are not ASCII: mail to it needs SMTPUTF8 "
            "(RFC 6531), which mailer does not support"
        )
    return valid.ascii_email
