"""Host names and addresses as the settings take them: which are this machine's
(`is_loopback_host`), and what is wrong with one that is not a host at all (`host_problem`).
"""

from __future__ import annotations

import ipaddress
import re

import idna

from mailer.errors import cut


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_LABEL = re.compile(r"[A-Za-z0-9-]{1,63}")


def host_problem(name: str, host: str, example: str) -> tuple[str, str | None]:
    """(the host as it will be used, what is wrong with it or None). A host is an IPv4 or
    IPv6 address, or a name of letters, digits and hyphens in labels of 1–63 characters, 253
    at most in all. A name in Thai (or any other script) is turned into its ASCII form
    (xn--…) with IDNA 2008, which is what the DNS holds."""
    try:
        ipaddress.ip_address(host)
        return host, None
    except ValueError:
        pass
    wrong = f"{name}={cut(host)!r} is not a host name or IP address"
    ascii_host = host
    if not host.isascii():
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            return host, f"{wrong} ({exc}); e.g. {name}={example}"
    labels = ascii_host.removesuffix(".").split(".")
    why = ""
    if host.startswith("[") and host.endswith("]"):
        why = "write an IPv6 address without the brackets"
    elif len(ascii_host.removesuffix(".")) > 253:
        why = f"it is {len(ascii_host)} characters long, at most 253 are allowed"
    elif any(not label for label in labels):
        why = "it has an empty label (two dots in a row, or a dot at the start)"
    elif long := next((label for label in labels if len(label) > 63), None):
        why = f"the label {cut(long, 20)!r} is {len(long)} characters long, at most 63 are allowed"
    elif bad := next((label for label in labels if not _LABEL.fullmatch(label)), None):
        why = f"the label {cut(bad, 20)!r} has a character other than a letter, digit or hyphen"
    elif any(label.startswith("-") or label.endswith("-") for label in labels):
        why = "a label starts or ends with a hyphen"
    elif labels[-1].isdigit():
        why = "it looks like an IP address but is not one"
    return ascii_host, (f"{wrong}: {why}; e.g. {name}={example}" if why else None)
