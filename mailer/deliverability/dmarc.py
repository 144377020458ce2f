"""DMARC (RFC 7489): the policy receivers apply to the From domain, and whether a verified
DKIM signature or an SPF pass vouches for it (is aligned with it).

Relaxed alignment compares organisational domains (§3.2): the public suffix and one label
more, by the Public Suffix List as `publicsuffixlist` bundles it (offline: nothing is
downloaded at run time), so `mail.dbd.go.th` aligns with `dbd.go.th` but `x.co.th` does not
with `y.co.th`. The record is `_dmarc.<From domain>`, else `_dmarc.<its organisational
domain>` (§6.6.3), whose `sp=` then applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from mailer.deliverability.domains import tags
from mailer.deliverability.findings import Finding, failed, passed, warned
from mailer.deliverability.resolver import Dns, DnsFailure

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

POLICIES = ("none", "quarantine", "reject")
_VERSION = re.compile(r"v\s*=\s*DMARC1\s*(;|$)", re.IGNORECASE)  # first, as §6.4 requires


@cache
def _suffixes() -> PublicSuffixList:
    """The list, parsed once (~0.1 s) when a check first needs it, not at every start."""
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def organisational(domain: str) -> str:
    """The organisational domain (RFC 7489 §3.2): the public suffix and one label more; a
    domain that is itself a public suffix (`go.th`) stands for itself."""
    domain = domain.lower().rstrip(".")
    return _suffixes().privatesuffix(domain) or domain


def aligned(domain: str, other: str, *, strict: bool) -> bool:
    """Strict: the same domain. Relaxed: the same organisational domain."""
    domain, other = domain.lower().rstrip("."), other.lower().rstrip(".")
    if strict:
        return domain == other
    return organisational(domain) == organisational(other)


@dataclass(frozen=True)
class Alignment:
    """What DMARC looks at: the From domain, and who vouches for it."""

    from_domain: str
    envelope_domain: str
    dkim_domain: str | None  # d= we sign with; None: we do not sign
    dkim_verified: bool  # our signature verified against the published key
    spf_pass: bool


@dataclass(frozen=True)
class Policy:
    """The DMARC record that applies to a From domain, as policy discovery finds it."""

    where: str  # the domain whose _dmarc record applies; "" when none does
    tags: dict[str, str] = field(default_factory=dict)
    inherited: bool = False  # found at the organisational domain, for a domain below it
    problem: str = ""  # why no record applies although some were found

    @property
    def tag(self) -> str:
        """The tag that decides: `sp` for a domain below the one holding the record (when
        it is valid), else `p`."""
        sp = self.tags.get("sp", "").lower()
        return "sp" if self.inherited and sp in POLICIES else "p"

    @property
    def disposition(self) -> str:
        return self.tags.get(self.tag, "").lower()

    def strict(self, mode: str) -> bool:
        """`adkim` / `aspf` is s (strict); the default is r (relaxed)."""
        return self.tags.get(mode, "r").lower() == "s"

    def label(self, from_domain: str) -> str:
        below = f" (the organisational domain of {from_domain})" if self.inherited else ""
        return f"_dmarc.{self.where}{below}: {self.tag}={self.disposition or '?'}"


def discover(dns: Dns, from_domain: str) -> Policy:
    """RFC 7489 §6.6.3: `_dmarc.<From domain>`, else `_dmarc.<organisational domain>`;
    more than one DMARC record at a name and none of them applies."""
    for domain in dict.fromkeys((from_domain, organisational(from_domain))):
        found = [r for r in dns.txt(f"_dmarc.{domain}") if _VERSION.match(r)]
        inherited = domain != from_domain
        if len(found) > 1:
            problem = f"_dmarc.{domain} has {len(found)} DMARC records; receivers apply none"
            return Policy(domain, inherited=inherited, problem=problem)
        if found:
            return Policy(domain, tags(found[0]), inherited=inherited)
    return Policy("")


def dmarc_finding(dns: Dns, seen: Alignment) -> Finding:
    """The DMARC record for the From domain, its policy, and whether a DKIM or SPF pass
    aligns with From."""
    domain = seen.from_domain
    try:
        policy = discover(dns, domain)
    except DnsFailure as exc:
        return warned("dmarc", domain, str(exc), "check again later")
    if policy.problem:
        fix = f"keep exactly one v=DMARC1 record at _dmarc.{policy.where}"
        return warned("dmarc", domain, policy.problem, fix)
    if not policy.where:
        return _no_record(domain)
    dkim_aligned = seen.dkim_domain is not None and aligned(
        domain, seen.dkim_domain, strict=policy.strict("adkim")
    )
    spf_aligned = aligned(domain, seen.envelope_domain, strict=policy.strict("aspf"))
    how = [
        f"DKIM d={seen.dkim_domain}" if dkim_aligned and seen.dkim_verified else "",
        "SPF" if spf_aligned and seen.spf_pass else "",
    ]
    text = f"{policy.label(domain)}; From {domain}"
    if policy.disposition not in POLICIES:
        return warned(
            "dmarc",
            domain,
            f"{text}: {policy.tag}= is not none, quarantine or reject, so receivers apply no "
            "policy",
            f"set p=none (to start) at _dmarc.{policy.where}, quarantine or reject later",
        )
    if any(how):
        return passed("dmarc", domain, f"{text} aligns with {' and '.join(filter(None, how))}")
    why, fix = _unaligned(seen, policy, dkim_aligned=dkim_aligned, spf_aligned=spf_aligned)
    if policy.disposition in ("quarantine", "reject"):
        verb = policy.disposition
        return failed("dmarc", domain, f"{text} {why}: receivers will {verb} these messages", fix)
    return warned("dmarc", domain, f"{text} {why}", fix)


def _no_record(domain: str) -> Finding:
    org = organisational(domain)
    nor = f" nor for its organisational domain {org}" if org != domain else ""
    suggest = f'"v=DMARC1; p=none; rua=mailto:postmaster@{org}"'
    return warned(
        "dmarc",
        domain,
        f"no DMARC record for {domain}{nor}",
        f"publish the TXT record {suggest} at _dmarc.{org} (large receivers expect one)",
    )


def _unaligned(
    seen: Alignment, policy: Policy, *, dkim_aligned: bool, spf_aligned: bool
) -> tuple[str, str]:
    """Why neither DKIM nor SPF vouches for From, and what would make one of them."""
    org = organisational(seen.from_domain)
    if seen.dkim_domain is None:
        why, fix = "has no DKIM signature", f"sign for {seen.from_domain} (DKIM_SELECTOR …)"
    elif not dkim_aligned:
        why = f"is not aligned with DKIM d={seen.dkim_domain}"
        if policy.strict("adkim") and organisational(seen.dkim_domain) == org:
            why += " (adkim=s: only the same domain aligns)"
        fix = f"sign with DKIM_DOMAIN={seen.from_domain} (its key published)"
    else:
        why, fix = "has no DKIM signature that verifies", "make the DKIM check above pass"
    if not spf_aligned:
        why += f" nor with the envelope domain {seen.envelope_domain}"
        if policy.strict("aspf") and organisational(seen.envelope_domain) == org:
            why += " (aspf=s)"
    else:
        why += " and SPF does not pass"
        fix += ", or make SPF cover the relay"
    return why, fix
