"""The relay (SMTP_HOST) as receivers see it: its addresses, its PTR names, and the TLS
session mailer opens to it (verified, as sending does: `SmtpTransport`)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from datetime import UTC, datetime

from mailer.deliverability.findings import Finding, failed, passed, warned
from mailer.deliverability.resolver import Dns, DnsFailure
from mailer.errors import TransportError
from mailer.settings import SmtpSettings

CERT_DAYS_WARN = 14
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def relay_addresses(smtp: SmtpSettings) -> tuple[list[Address], Finding]:
    """The addresses mailer connects to for SMTP_HOST (as sending resolves it: the
    system's resolver), and what to say about them."""
    try:
        infos = socket.getaddrinfo(smtp.host, smtp.port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        return [], failed(
            "relay",
            smtp.host,
            f"SMTP_HOST={smtp.host} does not resolve ({exc.strerror or exc})",
            "check SMTP_HOST; SPF, PTR and TLS could not be checked",
        )
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if address not in found:
            found.append(address)
    shown = ", ".join(map(str, found))
    if all(address.is_loopback for address in found):
        return found, warned(
            "relay",
            smtp.host,
            f"SMTP_HOST={smtp.host} is this machine ({shown}); SPF and PTR below are checked "
            "for that address",
            "a relay on this machine sends out from this machine's public address: check "
            "SPF and PTR for that one, or set SMTP_HOST to the provider's relay",
        )
    return found, passed("relay", smtp.host, f"SMTP_HOST={smtp.host} is {shown}")


def ptr_findings(dns: Dns, addresses: list[Address]) -> list[Finding]:
    """Each relay address has a name (PTR) that leads back to it (forward-confirmed)."""
    findings = []
    for address in addresses:
        try:
            names = dns.ptr(str(address))
            confirmed = [n for n in names if str(address) in dns.addresses(n)]
        except DnsFailure as exc:
            findings.append(
                warned("ptr", str(address), f"{address}: {exc}", "run the check again later")
            )
            continue
        fix = (
            f"ask whoever runs {address} (the relay's provider) for a PTR record naming the "
            "relay, whose A/AAAA record gives this address back"
        )
        if not names:
            findings.append(warned("ptr", str(address), f"{address} has no PTR record", fix))
        elif not confirmed:
            named = f"{address} is named {', '.join(names)}, which does not lead back to it"
            findings.append(warned("ptr", str(address), named, fix))
        else:
            findings.append(passed("ptr", str(address), f"{address} is {confirmed[0]} (and back)"))
    return findings


def tls_finding(smtp: SmtpSettings, now: datetime) -> Finding:
    """Open the session sending would (SMTP_SECURITY, the certificate verified, the
    login), and report its TLS version and certificate."""
    from mailer.delivery.transport import SmtpTransport

    where = f"{smtp.host}:{smtp.port} (SMTP_SECURITY={smtp.security})"
    try:
        with SmtpTransport(smtp) as transport:
            session = transport.tls()
    except TransportError as exc:
        return failed("tls", smtp.host, str(exc), "fix SMTP_HOST/SMTP_PORT/SMTP_SECURITY as said")
    if session is None:
        if smtp.is_loopback:
            return passed(
                "tls", smtp.host, f"{where}: no TLS, on this machine (nothing crosses a network)"
            )
        return failed(
            "tls",
            smtp.host,
            f"{where}: messages go to the relay unencrypted",
            "set SMTP_SECURITY=starttls (port 587) or ssl (port 465)",
        )
    version, cert = session
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(str(cert["notAfter"])), UTC)
    days = (expires - now).days
    subject = _name(cert)
    seen = f"{where}: {version}, certificate of {subject} verified, valid until {expires:%Y-%m-%d}"
    if version in ("TLSv1", "TLSv1.1", "SSLv3"):
        return warned(
            "tls", smtp.host, seen, "the relay offers only an old TLS version; ask for TLS 1.2+"
        )
    if days < CERT_DAYS_WARN:
        return warned(
            "tls",
            smtp.host,
            f"{seen} ({days} day(s) left)",
            "have the relay's certificate renewed now",
        )
    return passed("tls", smtp.host, seen)


def _name(cert: dict[str, object]) -> str:
    """The certificate's first DNS or IP name, else its common name."""
    alt = cert.get("subjectAltName")
    if isinstance(alt, tuple) and alt:
        return str(alt[0][1])
    for rdn in cert.get("subject", ()):  # type: ignore[attr-defined]
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return "the relay"
