"""A real authoritative DNS server on loopback for the tests (dnslib), UDP and TCP on one
port, answering from zone data a test sets: `{name: {type: [value, …]}}`.

A name it has no data for is NXDOMAIN; a name it has, asked for another type, an empty
NOERROR answer; a name in `failing`, SERVFAIL (a DNS that cannot answer). TXT values longer
than 255 bytes (a DKIM key) are split into strings of 255, as a zone file would hold them.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping, Sequence

from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

Zone = Mapping[str, Mapping[str, Sequence[str]]]


def _key(name: str) -> str:
    return name.lower().rstrip(".")


class _ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self.records: dict[str, dict[str, list[RR]]] = {}
        self.failing: set[str] = set()
        self.asked: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def load(self, zone: Zone) -> None:
        records: dict[str, dict[str, list[RR]]] = {}
        for name, types in zone.items():
            for rtype, values in types.items():
                records.setdefault(_key(name), {})[rtype.upper()] = [
                    _record(name, rtype.upper(), value) for value in values
                ]
        with self.lock:
            self.records = records

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name = _key(str(request.q.qname))
        rtype = QTYPE[request.q.qtype]
        with self.lock:
            self.asked.append((name, rtype))
            found = self.records.get(name)
            failing = name in self.failing
        if failing:
            reply.header.rcode = RCODE.SERVFAIL
        elif found is None:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            for record in found.get(rtype, []):
                reply.add_answer(record)
        return reply


def _record(name: str, rtype: str, value: str) -> RR:
    owner = name.rstrip(".") + "."
    if rtype == "TXT":
        data = value.encode("utf-8")
        chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
        return RR(owner, QTYPE.TXT, rdata=TXT(chunks), ttl=60)
    return RR.fromZone(f"{owner} 60 IN {rtype} {value}")[0]


class LocalDns:
    """The server; `serve(zone)` replaces what it answers."""

    def __init__(self) -> None:
        self.resolver = _ZoneResolver()
        quiet = DNSLogger(log="-request,-reply,-truncated,-error")
        self.udp = DNSServer(self.resolver, address="127.0.0.1", port=0, logger=quiet)
        self.port = int(self.udp.server.server_address[1])
        self.tcp = DNSServer(
            self.resolver, address="127.0.0.1", port=self.port, tcp=True, logger=quiet
        )

    @property
    def address(self) -> str:
        """What MAILER_DNS_SERVER is set to."""
        return f"127.0.0.1:{self.port}"

    def serve(self, zone: Zone, failing: Sequence[str] = ()) -> None:
        self.resolver.load(zone)
        self.resolver.failing = {_key(name) for name in failing}

    @property
    def asked(self) -> list[tuple[str, str]]:
        return list(self.resolver.asked)

    def __enter__(self) -> LocalDns:
        self.udp.start_thread()
        self.tcp.start_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self.udp, self.tcp):
            server.stop()
            server.server.server_close()


def local_dns() -> Iterator[LocalDns]:
    """For a fixture: a server that is up (a UDP question answered) before it is used."""
    with LocalDns() as server:
        probe = DNSRecord.question("probe.test")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(probe.pack(), ("127.0.0.1", server.port))
            sock.recvfrom(512)
        yield server
