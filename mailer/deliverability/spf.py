"""SPF (RFC 7208) `check_host`: would a receiver let this IP send for this domain?

Written here rather than taken from pyspf: pyspf's last release (2.0.14, 2020) asks DNS
through `dns.resolver.query`, deprecated since dnspython 2.0 (a warning on every lookup),
on the process-wide default resolver, so it cannot be pointed at MAILER_DNS_SERVER without
changing a global. This evaluator covers what sending domains publish: the mechanisms all,
include, a, mx, ip4, ip6, exists and ptr (which RFC 7208 says not to use; it is evaluated
but named in a warning), the modifier redirect=, and macros (§7). The limits are the RFC's:
at most 10 terms that ask DNS (include, a, mx, ptr, exists, redirect), 10 names per mx or
ptr, 2 lookups that find nothing; past them the result is permerror, as at a receiver.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from mailer.deliverability.resolver import Dns, DnsFailure, parse_mx

MAX_LOOKUPS = 10
MAX_VOID = 2
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class SpfResult:
    result: str  # pass fail softfail neutral none permerror temperror
    domain: str
    record: str = ""  # the top domain's record
    matched: str = ""  # the term that decided, with the domain it is in
    reason: str = ""  # for none / permerror / temperror: why
    notes: list[str] = field(default_factory=list)  # e.g. ptr used


class _PermError(Exception):
    pass


_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_TERM = re.compile(r"([a-z][a-z0-9]*)(?::(\S*?))?(?:/(\d+))?(?://(\d+))?", re.I)
_MODIFIER = re.compile(r"([a-z][a-z0-9_.-]*)=(\S*)", re.I)
_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")


@dataclass(frozen=True)
class _Term:
    qualifier: str
    name: str
    arg: str
    cidr4: int
    cidr6: int
    text: str


def _term(text: str, domain: str) -> _Term:
    qualifier = text[0] if text[0] in "+-~?" else ""
    found = _TERM.fullmatch(text[len(qualifier) :])
    if found is None or found[1].lower() not in _MECHANISMS:
        raise _PermError(f"{domain}: {text!r} is not an SPF mechanism")
    name, arg, four, six = found[1].lower(), found[2] or "", found[3], found[4]
    if name in ("ip4", "ip6") and four is not None:
        arg, four = f"{arg}/{four}", None
    cidr4, cidr6 = int(four or 32), int(six or 128)
    if cidr4 > 32 or cidr6 > 128:  # RFC 7208 §5.6: an invalid prefix length is a permerror
        raise _PermError(f"{domain}: {text!r} has a prefix length out of range (/0–32, //0–128)")
    return _Term(_QUALIFIERS[qualifier or "+"], name, arg, cidr4, cidr6, text)


_MACRO = re.compile(r"%\{([slodiphcrtv])(\d*)(r?)([-.+,/_=]*)\}|%%|%_|%-", re.I)


def check_host(dns: Dns, ip: Address, domain: str, sender: str) -> SpfResult:
    """The SPF result for mail from `sender` (the envelope address) sent by `ip`."""
    evaluation = _Evaluation(dns, ip, sender)
    try:
        return evaluation.run(domain.lower().rstrip("."), top=True)
    except _PermError as exc:
        return SpfResult("permerror", domain, evaluation.top_record, reason=str(exc))
    except DnsFailure as exc:
        return SpfResult("temperror", domain, evaluation.top_record, reason=str(exc))


class _Evaluation:
    def __init__(self, dns: Dns, ip: Address, sender: str) -> None:
        self.dns = dns
        self.ip = ip
        self.sender = sender
        self.lookups = 0
        self.void = 0
        self.top_record = ""
        self.notes: list[str] = []

    def _count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _PermError(
                f"more than {MAX_LOOKUPS} DNS lookups (include, a, mx, ptr, exists, redirect); "
                "receivers stop there. Flatten some include: into ip4:/ip6:"
            )

    def _ask(self, name: str, rdtype: str) -> list[str]:
        found = self.dns.records(name, rdtype)
        if not found:
            self.void += 1
            if self.void > MAX_VOID:
                raise _PermError(f"more than {MAX_VOID} lookups found nothing (last: {name})")
        return found

    def record(self, domain: str) -> str | None:
        records = [r for r in self.dns.txt(domain) if re.match(r"v=spf1(\s|$)", r, re.I)]
        if len(records) > 1:
            raise _PermError(f"{domain} has {len(records)} SPF records; publish exactly one")
        return records[0] if records else None

    def run(self, domain: str, *, top: bool = False) -> SpfResult:
        text = self.record(domain)
        if top:
            self.top_record = text or ""
        if text is None:
            return SpfResult("none", domain, reason=f"no TXT record v=spf1 at {domain}")
        redirect = None
        for word in text.split()[1:]:
            modifier = _MODIFIER.fullmatch(word)
            if modifier is not None:
                if modifier[1].lower() == "redirect":
                    redirect = modifier[2]
                continue  # exp= and unknown modifiers do not change the result
            term = _term(word, domain)
            if self._matches(term, domain):
                return self._result(term.qualifier, domain, f"{word} in {domain}", text)
        if redirect is not None:
            self._count()
            target = self._expand(redirect, domain)
            found = self.run(target)
            if found.result == "none":
                raise _PermError(f"redirect={target} in {domain}: {target} has no SPF record")
            return self._result(found.result, domain, found.matched, text)
        return self._result("neutral", domain, f"no term of {domain} matched", text)

    def _result(self, result: str, domain: str, matched: str, record: str) -> SpfResult:
        return SpfResult(result, domain, record, matched, notes=self.notes)

    def _matches(self, term: _Term, domain: str) -> bool:
        """Whether the IP matches `term` (asking DNS as the mechanism says)."""
        if term.name == "all":
            return True
        if term.name in ("ip4", "ip6"):
            return self._in_network(term.arg, domain, term.text)
        self._count()
        if term.name in ("include", "exists") and not term.arg:
            raise _PermError(f"{domain}: {term.text!r} names no domain")
        target = self._expand(term.arg, domain) if term.arg else domain
        if term.name == "include":
            return self._include(target, domain)
        if term.name == "exists":
            return bool(self._ask(target, "A"))
        if term.name == "ptr":
            self.notes.append(f"{domain} uses ptr, which RFC 7208 says not to; use ip4:/ip6:")
            return self._ptr_matches(target)
        hosts = [target] if term.name == "a" else self._mx_hosts(target)
        return any(self._address_matches(host, term.cidr4, term.cidr6) for host in hosts)

    def _include(self, target: str, domain: str) -> bool:
        found = self.run(target)
        if found.result in ("none",):
            raise _PermError(f"include:{target} in {domain}: {target} has no SPF record")
        return found.result == "pass"

    def _in_network(self, value: str, domain: str, term: str) -> bool:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise _PermError(f"{domain}: {term!r} is not an address or network") from None
        return self.ip.version == network.version and self.ip in network

    def _mx_hosts(self, target: str) -> list[str]:
        hosts = [host for _, host in parse_mx(self._ask(target, "MX")) if host]
        if len(hosts) > MAX_LOOKUPS:
            raise _PermError(f"{target} has more than {MAX_LOOKUPS} MX hosts")
        return hosts

    def _address_matches(self, host: str, cidr4: int, cidr6: int) -> bool:
        rdtype, prefix = ("A", cidr4) if self.ip.version == 4 else ("AAAA", cidr6)
        for text in self._ask(host, rdtype):
            if self.ip in ipaddress.ip_network(f"{text}/{prefix}", strict=False):
                return True
        return False

    def _ptr_matches(self, target: str) -> bool:
        names = self.dns.ptr(str(self.ip))[:MAX_LOOKUPS]
        for name in names:
            confirmed = str(self.ip) in self.dns.addresses(name)
            if confirmed and (name == target or name.endswith("." + target)):
                return True
        return False

    def _expand(self, spec: str, domain: str) -> str:
        """A domain-spec with its macros (RFC 7208 §7) filled in."""
        local, _, sender_domain = self.sender.rpartition("@")

        def value(letter: str) -> str:
            if letter == "i" and self.ip.version == 6:
                return ".".join(self.ip.exploded.replace(":", ""))
            return {
                "s": self.sender,
                "l": local or "postmaster",
                "o": sender_domain,
                "d": domain,
                "i": str(self.ip),
                "p": "unknown",
                "v": "in-addr" if self.ip.version == 4 else "ip6",
                "h": sender_domain,
                "c": str(self.ip),
                "r": "unknown",
                "t": "0",
            }[letter]

        def replace(macro: re.Match[str]) -> str:
            if macro[0] in ("%%", "%_", "%-"):
                return {"%%": "%", "%_": " ", "%-": "%20"}[macro[0]]
            parts = re.split("[" + re.escape(macro[4] or ".") + "]", value(macro[1].lower()))
            if macro[3]:
                parts.reverse()
            if macro[2]:
                parts = parts[-int(macro[2]) :] if int(macro[2]) else parts
            return ".".join(parts)

        expanded = _MACRO.sub(replace, spec)
        if "%" in expanded:
            raise _PermError(f"{domain}: {spec!r} has a malformed macro")
        return expanded.rstrip(".").lower()
