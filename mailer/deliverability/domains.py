"""What the sender's and the coordinator's domains publish: SPF (does it let the relay
send?), the DKIM key (does our signature verify against it?) and MX (can replies arrive?).
DMARC, which needs the first two, is `dmarc`."""

from __future__ import annotations

import re

from mailer.deliverability.findings import Finding, failed, passed, warned
from mailer.deliverability.resolver import Dns, DnsFailure
from mailer.deliverability.spf import Address, check_host
from mailer.delivery.dkim import DkimSigner, verifies


def tags(record: str) -> dict[str, str]:
    """A tag=value; list (DKIM key, DMARC), names lower-cased, values stripped."""
    found = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            found[name.strip().lower()] = re.sub(r"\s+", "", value)
    return found


def spf_findings(dns: Dns, addresses: list[Address], sender: str) -> tuple[list[Finding], bool]:
    """SPF of the envelope domain for each relay address; and whether all passed."""
    domain = sender.rpartition("@")[2]
    findings, notes, results = [], [], []
    for address in addresses:
        result = check_host(dns, address, domain, sender)
        results.append(result.result)
        notes += result.notes
        record = f" ({result.record})" if result.record else ""
        where = f"{domain}{record} for the relay {address}"
        add = f"add ip{address.version}:{address} (or the relay provider's include:) to it"
        if result.result == "pass":
            findings.append(passed("spf", domain, f"{where}: pass, by {result.matched}"))
        elif result.result == "none":
            record = f'"v=spf1 ip{address.version}:{address} ~all"'
            fix = f"publish the TXT record {record} at {domain}"
            findings.append(failed("spf", domain, f"{domain} publishes no SPF record", fix))
        elif result.result in ("fail", "permerror"):
            why = result.reason or f"{result.result}, by {result.matched}"
            fix = "correct the record" if result.result == "permerror" else add
            findings.append(failed("spf", domain, f"{where}: {why}", fix))
        elif result.result == "temperror":
            findings.append(warned("spf", domain, f"{where}: {result.reason}", "check again later"))
        else:  # softfail, neutral: delivered, often to spam
            findings.append(
                warned("spf", domain, f"{where}: {result.result}, by {result.matched}", add)
            )
    findings += [warned("spf", domain, note, "") for note in dict.fromkeys(notes)]
    return findings, bool(results) and all(result == "pass" for result in results)


def dkim_finding(
    dns: Dns, signer: DkimSigner | None, sample: bytes, from_domain: str
) -> tuple[Finding, bool]:
    """The key at <selector>._domainkey.<d>, and whether `sample` (a composed, signed
    message) verifies against it; and whether it did. Unsigned: about `from_domain`."""
    if signer is None:
        return warned(
            "dkim",
            from_domain,
            "mailer does not sign (DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE are not set)",
            "if the relay does not sign for the sender's domain, set up DKIM as README "
            '"Deliverability" shows',
        ), False
    name = signer.record_name
    publish = f'publish the TXT record "{signer.record()}" at {name}'
    try:
        records = [r for r in dns.txt(name) if "p=" in r]
    except DnsFailure as exc:
        return warned("dkim", signer.domain, str(exc), "check again later"), False
    if not records:
        return failed("dkim", signer.domain, f"no DKIM key is published at {name}", publish), False
    key = tags(records[0])
    if not key.get("p"):
        return failed(
            "dkim", signer.domain, f"the key at {name} is revoked (empty p=)", publish
        ), False
    try:
        verified = verifies(sample, dns.txt_lookup)
    except DnsFailure as exc:
        return warned("dkim", signer.domain, str(exc), "check again later"), False
    if not verified:
        return failed(
            "dkim",
            signer.domain,
            f"a signed invitation does not verify against the key at {name}: it is not the "
            "public half of DKIM_PRIVATE_KEY_FILE",
            publish + " (or set DKIM_PRIVATE_KEY_FILE to the key that belongs to it)",
        ), False
    seen = f"{name}: a signed invitation verifies ({signer.algorithm}, {signer.key_bits()} bits)"
    if signer.key_bits() < 2048 and signer.algorithm == "rsa-sha256":
        return warned(
            "dkim", signer.domain, seen, "use a 2048-bit key (some receivers ignore 1024)"
        ), True
    if "y" in key.get("t", "").split(":"):
        return warned(
            "dkim", signer.domain, seen + ", but t=y", f"remove t=y from {name} when done testing"
        ), True
    return passed("dkim", signer.domain, seen), True


def mx_finding(dns: Dns, domain: str, role: str, *, needed: bool) -> Finding:
    """Mail to `domain` can arrive (MX, or an address when there is none). `needed`: a
    missing MX is a fail (the coordinator's replies), else a warning (bounces)."""
    lacking = failed if needed else warned
    try:
        hosts = dns.mx(domain)
        fallback = [] if hosts else dns.addresses(domain)
    except DnsFailure as exc:
        return warned("mx", domain, str(exc), "check again later")
    fix = f"publish an MX record for {domain} naming its mail server"
    if hosts and all(not host for _, host in hosts):
        return lacking("mx", domain, f"{domain} ({role}) says it takes no mail (null MX)", fix)
    if not hosts and not fallback:
        return lacking("mx", domain, f"{domain} ({role}) has no MX record and no address", fix)
    if not hosts:
        return warned("mx", domain, f"{domain} ({role}) has no MX; mail goes to its A/AAAA", fix)
    shown = ", ".join(f"{host} ({preference})" for preference, host in hosts[:4])
    return passed("mx", domain, f"{domain} ({role}) takes mail at {shown}")
