"""The DNS as `check --deliverability` asks it: the system's resolver, or the servers of
MAILER_DNS_SERVER (`dns_servers` reads that setting), through dnspython.

A name with no such record (NXDOMAIN, or no answer of that type) is an empty list; a
question nobody could answer (a timeout, SERVFAIL) raises `DnsFailure`, which a check
reports as "could not tell", never as "missing".
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from mailer.errors import cut

if TYPE_CHECKING:
    import dns.resolver

LIFETIME = 5.0  # seconds for one question, all servers and retries included


class DnsFailure(Exception):
    """No answer could be had (timeout, SERVFAIL, no server reachable)."""


def dns_servers(raw: str, problems: list[str]) -> tuple[tuple[str, int], ...]:
    """MAILER_DNS_SERVER: addresses, each with an optional port (`127.0.0.1:5353`,
    `[::1]:5353`), separated by commas; empty: the system's resolver."""
    servers = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        host, port = item, "53"
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") or "53"
        elif item.count(":") == 1:
            host, port = item.split(":")
        try:
            address = str(ipaddress.ip_address(host))
            number = int(port)
        except ValueError:
            number = 0
        if not 0 < number < 65536:
            problems.append(
                f"MAILER_DNS_SERVER={cut(item)!r} is not an IP address with an optional port; "
                "e.g. MAILER_DNS_SERVER=127.0.0.1:5353 or [::1]:53 (several: commas between)"
            )
            continue
        servers.append((address, number))
    return tuple(servers)


def parse_mx(records: list[str]) -> list[tuple[int, str]]:
    """MX records as text → (preference, host), best first; a null MX is (0, "")."""
    found = []
    for text in records:
        preference, _, host = text.partition(" ")
        found.append((int(preference), host.rstrip(".").lower()))
    return sorted(found)


class Dns:
    """One resolver (and its cache) for one run of the checks."""

    def __init__(self, servers: tuple[tuple[str, int], ...] = ()) -> None:
        self.servers = servers
        self._resolver: dns.resolver.Resolver | None = None

    @property
    def where(self) -> str:
        """Which DNS answered, for the report."""
        if not self.servers:
            return "the system's resolver"
        return ", ".join(f"{host}:{port}" for host, port in self.servers)

    def _made(self) -> dns.resolver.Resolver:
        if self._resolver is None:
            import dns.nameserver
            import dns.resolver

            resolver = dns.resolver.Resolver(configure=not self.servers)
            if self.servers:
                resolver.nameservers = [
                    dns.nameserver.Do53Nameserver(host, port) for host, port in self.servers
                ]
            resolver.lifetime = LIFETIME
            resolver.cache = dns.resolver.Cache()
            self._resolver = resolver
        return self._resolver

    def records(self, name: str, rdtype: str) -> list[str]:
        """The records of `rdtype` at `name` as text (TXT: each record's strings joined)."""
        import dns.exception
        import dns.rdtypes.ANY.TXT
        import dns.resolver

        try:
            answer = self._made().resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.resolver.YXDOMAIN:
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise DnsFailure(f"no DNS answer for {name} {rdtype} from {self.where}") from exc
        except dns.exception.DNSException as exc:
            raise DnsFailure(f"the DNS question {name} {rdtype} failed: {exc}") from exc
        found = []
        for rdata in answer:
            if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):
                found.append(b"".join(rdata.strings).decode("utf-8", "replace"))
            else:
                found.append(rdata.to_text())
        return found

    def txt(self, name: str) -> list[str]:
        return self.records(name, "TXT")

    def addresses(self, name: str) -> list[str]:
        """The IPv4 and IPv6 addresses of `name`."""
        return self.records(name, "A") + self.records(name, "AAAA")

    def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, host) of each MX, best first; a null MX (RFC 7505) is (0, "")."""
        return parse_mx(self.records(name, "MX"))

    def ptr(self, address: str) -> list[str]:
        import dns.reversename

        name = dns.reversename.from_address(address).to_text()
        return [host.rstrip(".").lower() for host in self.records(name, "PTR")]

    def txt_lookup(self, name: str) -> str | None:
        """The first TXT record at `name`, for dkimpy (`mailer.delivery.dkim.verifies`)."""
        found = self.txt(name)
        return found[0] if found else None
