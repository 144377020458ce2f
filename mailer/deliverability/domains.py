"""What the sender's and the coordinator's domains publish: SPF (does it let the relay
send?), the DKIM key (does our signature verify against it?), DMARC (its policy, and
whether From aligns with DKIM `d=` or the envelope domain) and MX (can replies arrive?)."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
            findings.append(passed("spf", f"{where}: pass, by {result.matched}"))
        elif result.result == "none":
            record = f'"v=spf1 ip{address.version}:{address} ~all"'
            fix = f"publish the TXT record {record} at {domain}"
            findings.append(failed("spf", f"{domain} publishes no SPF record", fix))
        elif result.result in ("fail", "permerror"):
            why = result.reason or f"{result.result}, by {result.matched}"
            fix = "correct the record" if result.result == "permerror" else add
            findings.append(failed("spf", f"{where}: {why}", fix))
        elif result.result == "temperror":
            findings.append(warned("spf", f"{where}: {result.reason}", "check again later"))
        else:  # softfail, neutral: delivered, often to spam
            findings.append(warned("spf", f"{where}: {result.result}, by {result.matched}", add))
    findings += [warned("spf", note, "") for note in dict.fromkeys(notes)]
    return findings, bool(results) and all(result == "pass" for result in results)


def dkim_finding(dns: Dns, signer: DkimSigner | None, sample: bytes) -> tuple[Finding, bool]:
    """The key at <selector>._domainkey.<d>, and whether `sample` (a composed, signed
    message) verifies against it; and whether it did."""
    if signer is None:
        return warned(
            "dkim",
            "mailer does not sign (DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE are not set)",
            "if the relay does not sign for the sender's domain, set up DKIM as README "
            '"Deliverability" shows',
        ), False
    name = signer.record_name
    publish = f'publish the TXT record "{signer.record()}" at {name}'
    try:
        records = [r for r in dns.txt(name) if "p=" in r]
    except DnsFailure as exc:
        return warned("dkim", str(exc), "check again later"), False
    if not records:
        return failed("dkim", f"no DKIM key is published at {name}", publish), False
    key = tags(records[0])
    if not key.get("p"):
        return failed("dkim", f"the key at {name} is revoked (empty p=)", publish), False
    try:
        verified = verifies(sample, dns.txt_lookup)
    except DnsFailure as exc:
        return warned("dkim", str(exc), "check again later"), False
    if not verified:
        return failed(
            "dkim",
            f"a signed invitation does not verify against the key at {name}: it is not the "
            "public half of DKIM_PRIVATE_KEY_FILE",
            publish + " (or set DKIM_PRIVATE_KEY_FILE to the key that belongs to it)",
        ), False
    seen = f"{name}: a signed invitation verifies ({signer.algorithm}, {signer.key_bits()} bits)"
    if signer.key_bits() < 2048 and signer.algorithm == "rsa-sha256":
        return warned("dkim", seen, "use a 2048-bit key (some receivers ignore 1024)"), True
    if "y" in key.get("t", "").split(":"):
        return warned("dkim", seen + ", but t=y", f"remove t=y from {name} when done testing"), True
    return passed("dkim", seen), True


@dataclass(frozen=True)
class Alignment:
    """What DMARC looks at: the From domain, and who vouches for it."""

    from_domain: str
    envelope_domain: str
    dkim_domain: str | None  # d= we sign with; None: we do not sign
    dkim_verified: bool  # our signature verified against the published key
    spf_pass: bool


def _aligned(domain: str, other: str, organisational: str, *, strict: bool) -> bool:
    """Strict: the same domain. Relaxed: the same organisational domain, here taken as
    the domain holding the DMARC record, or one of the two being under the other."""
    if domain == other or strict:
        return domain == other
    under = (domain.endswith("." + other), other.endswith("." + domain))
    both = all(d == organisational or d.endswith("." + organisational) for d in (domain, other))
    return any(under) or both


def _dmarc_record(dns: Dns, from_domain: str) -> tuple[str, str]:
    """(the domain holding it, the record) for `from_domain`: its own, else a parent's."""
    for domain in _parents(from_domain):
        found = [r for r in dns.txt(f"_dmarc.{domain}") if r.lower().startswith("v=dmarc1")]
        if found:
            return domain, found[0]
    return "", ""


def dmarc_finding(dns: Dns, seen: Alignment) -> Finding:
    """The DMARC record for the From domain (that domain's, else its parents'), its policy,
    and whether a DKIM or SPF pass aligns with From."""
    try:
        where, record = _dmarc_record(dns, seen.from_domain)
    except DnsFailure as exc:
        return warned("dmarc", str(exc), "check again later")
    if not record:
        suggest = f'"v=DMARC1; p=none; rua=mailto:postmaster@{seen.from_domain}"'
        return warned(
            "dmarc",
            f"no DMARC record for {seen.from_domain}",
            f"publish the TXT record {suggest} at _dmarc.{seen.from_domain} (large receivers "
            "expect one)",
        )
    policy = tags(record)
    p = policy.get("p", "") if where == seen.from_domain else policy.get("sp", policy.get("p", ""))
    dkim_aligned = seen.dkim_domain is not None and _aligned(
        seen.from_domain, seen.dkim_domain, where, strict=policy.get("adkim") == "s"
    )
    spf_aligned = _aligned(
        seen.from_domain, seen.envelope_domain, where, strict=policy.get("aspf") == "s"
    )
    how = [
        f"DKIM d={seen.dkim_domain}" if dkim_aligned and seen.dkim_verified else "",
        "SPF" if spf_aligned and seen.spf_pass else "",
    ]
    text = f"_dmarc.{where}: p={p.lower() or '?'}; From {seen.from_domain}"
    if any(how):
        return passed("dmarc", f"{text} aligns with {' and '.join(filter(None, how))}")
    why, fix = _unaligned(seen, dkim_aligned=dkim_aligned, spf_aligned=spf_aligned)
    if p.lower() in ("quarantine", "reject"):
        return failed("dmarc", f"{text} {why}: receivers will {p.lower()} these messages", fix)
    return warned("dmarc", f"{text} {why}", fix)


def _unaligned(seen: Alignment, *, dkim_aligned: bool, spf_aligned: bool) -> tuple[str, str]:
    """Why neither DKIM nor SPF vouches for From, and what would make one of them."""
    if seen.dkim_domain is None:
        why, fix = "has no DKIM signature", f"sign for {seen.from_domain} (DKIM_SELECTOR …)"
    elif not dkim_aligned:
        why = f"is not aligned with DKIM d={seen.dkim_domain}"
        fix = f"sign with DKIM_DOMAIN={seen.from_domain} (its key published)"
    else:
        why, fix = "has no DKIM signature that verifies", "make the DKIM check above pass"
    if not spf_aligned:
        why += f" nor with the envelope domain {seen.envelope_domain}"
    else:
        why += " and SPF does not pass"
        fix += ", or make SPF cover the relay"
    return why, fix


def _parents(domain: str) -> list[str]:
    """The domain and each parent of two labels or more: where a DMARC record may be."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def mx_finding(dns: Dns, domain: str, role: str, *, needed: bool) -> Finding:
    """Mail to `domain` can arrive (MX, or an address when there is none). `needed`: a
    missing MX is a fail (the coordinator's replies), else a warning (bounces)."""
    lacking = failed if needed else warned
    try:
        hosts = dns.mx(domain)
        fallback = [] if hosts else dns.addresses(domain)
    except DnsFailure as exc:
        return warned("mx", str(exc), "check again later")
    fix = f"publish an MX record for {domain} naming its mail server"
    if hosts and all(not host for _, host in hosts):
        return lacking("mx", f"{domain} ({role}) says it takes no mail (null MX)", fix)
    if not hosts and not fallback:
        return lacking("mx", f"{domain} ({role}) has no MX record and no address", fix)
    if not hosts:
        return warned("mx", f"{domain} ({role}) has no MX; mail goes to its A/AAAA", fix)
    shown = ", ".join(f"{host} ({preference})" for preference, host in hosts[:4])
    return passed("mx", f"{domain} ({role}) takes mail at {shown}")
