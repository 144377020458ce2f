"""`mailer check --deliverability` against a real DNS server on loopback (tests/dns_server.py)
serving a good zone and broken ones, and against real SMTP servers with TLS: each broken
zone gets its verdict (pass / warn / fail) and what to change. DMARC is in
test_deliverability_dmarc.py, the command (its exit code, --json, --contacts) in
test_deliverability_command.py; both use the zones and helpers here."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailer.deliverability.findings import Finding
from mailer.deliverability.report import DeliverabilityReport, check_deliverability
from mailer.deliverability.resolver import Dns
from mailer.delivery.dkim import DkimSigner
from tests.conftest import CAMPAIGN, Mailhog
from tests.dns_server import LocalDns, Zone, local_dns
from tests.test_dkim import write_key
from tests.tls_smtp import tls_smtp_server

SELECTOR = "mailer2568"
DOMAIN = "ega.or.th"  # the sender's and the coordinator's in the shipped campaign
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def dns() -> Iterator[LocalDns]:
    yield from local_dns()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key(tmp_path_factory.mktemp("keys") / "dkim.pem")


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[int, Path, Mailhog]]:
    yield from tls_smtp_server(tmp_path, implicit=False)


def good_zone(
    signer: DkimSigner, changes: Mapping[str, dict | None] | None = None
) -> dict[str, dict]:
    """Everything a receiver looks for, for a relay at 127.0.0.1; `changes` replace (or,
    given None, remove) the data of a name."""
    zone: dict[str, dict] = {
        DOMAIN: {"TXT": ["v=spf1 ip4:127.0.0.1 -all"], "MX": ["10 mx.ega.or.th."]},
        "mx.ega.or.th": {"A": ["127.0.0.1"]},
        signer.record_name: {"TXT": [signer.record()]},
        f"_dmarc.{DOMAIN}": {"TXT": ["v=DMARC1; p=reject; rua=mailto:dmarc@ega.or.th"]},
        "1.0.0.127.in-addr.arpa": {"PTR": ["relay.ega.or.th."]},
        "relay.ega.or.th": {"A": ["127.0.0.1"]},
    }
    for name, data in (changes or {}).items():
        if data is None:
            zone.pop(name, None)
        else:
            zone[name] = data
    return zone


def _ws(make_ws, tls: tuple[int, Path, Mailhog], dns: LocalDns, key: Path, **env: str):  # type: ignore[no-untyped-def]
    port, ca_file, _box = tls
    values = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "starttls",
        "SMTP_CA_FILE": str(ca_file),
        "DKIM_SELECTOR": SELECTOR,
        "DKIM_PRIVATE_KEY_FILE": str(key),
        "MAILER_DNS_SERVER": dns.address,
    }
    values.update(env)
    return make_ws(**{k: v for k, v in values.items() if v})


def run(ws, dns: LocalDns, zone: Zone, failing: tuple[str, ...] = ()) -> DeliverabilityReport:  # type: ignore[no-untyped-def]
    dns.serve(zone, failing)
    return check_deliverability(
        ws.composer, ws.settings.smtp, Dns(ws.settings.dns_servers), ws.signer, NOW
    )


def found(report: DeliverabilityReport, check: str) -> list[Finding]:
    return [f for f in report.findings if f.check == check]


def only(report: DeliverabilityReport, check: str) -> Finding:
    (finding,) = found(report, check)
    return finding


@pytest.fixture
def ws(make_ws, tls, dns, key):  # type: ignore[no-untyped-def]
    return _ws(make_ws, tls, dns, key)


def test_a_good_zone_passes(ws, dns: LocalDns) -> None:  # type: ignore[no-untyped-def]
    report = run(ws, dns, good_zone(ws.signer))
    verdicts = {f.check: f.verdict for f in report.findings}
    assert verdicts == {
        "relay": "warn",  # 127.0.0.1: this machine, said once
        "spf": "pass",
        "dkim": "pass",
        "dmarc": "pass",
        "mx": "pass",
        "tls": "pass",
        "ptr": "pass",
    }, [f.line() for f in report.findings]
    assert report.ok
    assert "pass, by ip4:127.0.0.1 in ega.or.th" in only(report, "spf").text
    assert "a signed invitation verifies (rsa-sha256, 2048 bits)" in only(report, "dkim").text
    assert "aligns with DKIM d=ega.or.th and SPF" in only(report, "dmarc").text
    assert "mx.ega.or.th (10)" in only(report, "mx").text
    assert "certificate of 127.0.0.1 verified" in only(report, "tls").text
    assert "relay.ega.or.th (and back)" in only(report, "ptr").text
    asked = set(dns.asked)
    assert (f"{SELECTOR}._domainkey.{DOMAIN}", "TXT") in asked
    assert (f"_dmarc.{DOMAIN}", "TXT") in asked


# --- SPF ------------------------------------------------------------------------------------


def test_no_spf_fails_and_says_what_to_publish(ws, dns: LocalDns) -> None:  # type: ignore[no-untyped-def]
    report = run(ws, dns, good_zone(ws.signer, {"ega.or.th": {"MX": ["10 mx.ega.or.th."]}}))
    spf = only(report, "spf")
    assert spf.verdict == "fail"
    assert spf.text == "ega.or.th publishes no SPF record"
    assert 'TXT record "v=spf1 ip4:127.0.0.1 ~all" at ega.or.th' in spf.fix
    assert only(report, "dmarc").verdict == "pass"  # DKIM still aligns
    assert not report.ok


@pytest.mark.parametrize(
    ("record", "verdict", "said"),
    [
        ("v=spf1 ip4:192.0.2.0/24 -all", "fail", "fail, by -all in ega.or.th"),
        ("v=spf1 ip4:192.0.2.0/24 ~all", "warn", "softfail, by ~all in ega.or.th"),
        ("v=spf1 ip4:192.0.2.0/24", "warn", "neutral, by no term of ega.or.th matched"),
        ("v=spf1 ip4:127.0.0.0/8 -all", "pass", "pass, by ip4:127.0.0.0/8 in ega.or.th"),
        ("v=spf1 mx -all", "pass", "pass, by mx in ega.or.th"),
        ("v=spf1 a:relay.ega.or.th/24 -all", "pass", "pass, by a:relay.ega.or.th/24"),
        ("v=spf1 include:_spf.provider.test -all", "pass", "by include:_spf.provider.test in"),
        ("v=spf1 redirect=_spf.provider.test", "pass", "ip4:127.0.0.1 in _spf.provider.test"),
        ("v=spf1 exists:%{i}._ip.provider.test -all", "pass", "exists:%{i}._ip.provider.test"),
        ("v=spf1 exists:%{ir}.%{v}._ip.provider.test -all", "pass", "%{ir}.%{v}._ip"),
        ("v=spf1 include:_spf.nothing.test -all", "fail", "_spf.nothing.test has no SPF record"),
        ("v=spf1 ip4:300.1.1.1 -all", "fail", "'ip4:300.1.1.1' is not an address"),
        ("v=spf1 frobnicate -all", "fail", "'frobnicate' is not an SPF mechanism"),
        # review: a prefix length out of range was a traceback (ValueError)
        ("v=spf1 a/99 -all", "fail", "'a/99' has a prefix length out of range"),
        ("v=spf1 mx//200 -all", "fail", "'mx//200' has a prefix length out of range"),
    ],
)
def test_spf_is_evaluated_as_receivers_do(
    ws, dns: LocalDns, record: str, verdict: str, said: str
) -> None:  # type: ignore[no-untyped-def]
    zone = good_zone(
        ws.signer,
        {
            "ega.or.th": {
                "TXT": [record, "google-site-verification=abc"],
                "MX": ["10 mx.ega.or.th."],
            },
            "_spf.provider.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
            "127.0.0.1._ip.provider.test": {"A": ["127.0.0.2"]},
            "1.0.0.127.in-addr._ip.provider.test": {"A": ["127.0.0.2"]},
        },
    )
    spf = only(run(ws, dns, zone), "spf")
    assert spf.verdict == verdict, spf.line()
    assert said in spf.text, spf.line()
    if verdict != "pass":
        assert spf.fix


def test_text_from_dns_cannot_draw_on_the_terminal(ws, dns: LocalDns) -> None:  # type: ignore[no-untyped-def]
    """Review: escape codes and line breaks in a TXT record reached the terminal and could
    print a forged "✓ pass" line; every finding is one printable line."""
    forged = "v=spf1 ip4:192.0.2.1 \x1b[1A\x1b[2K\r\n✓ pass ผ่าน · TLS: ok -all"
    zone = good_zone(ws.signer, {"ega.or.th": {"TXT": [forged], "MX": ["10 mx.ega.or.th."]}})
    report = run(ws, dns, zone)
    for finding in report.findings:
        for text in (finding.text, finding.fix):
            assert "\x1b" not in text
            assert "\n" not in text
            assert "\r" not in text


def test_spf_stops_after_ten_lookups_and_at_two_records(ws, dns: LocalDns) -> None:  # type: ignore[no-untyped-def]
    chain = {f"l{n}.test": {"TXT": [f"v=spf1 include:l{n + 1}.test -all"]} for n in range(12)}
    zone = good_zone(ws.signer, {"ega.or.th": {"TXT": ["v=spf1 include:l0.test -all"]}, **chain})
    spf = only(run(ws, dns, zone), "spf")
    assert spf.verdict == "fail"
    assert "more than 10 DNS lookups" in spf.text
    two = good_zone(ws.signer, {"ega.or.th": {"TXT": ["v=spf1 -all", "v=spf1 ip4:127.0.0.1 -all"]}})
    spf = only(run(ws, dns, two), "spf")
    assert spf.verdict == "fail"
    assert "ega.or.th has 2 SPF records; publish exactly one" in spf.text


def test_a_dns_that_cannot_answer_is_a_warning_not_a_missing_record(ws, dns: LocalDns) -> None:  # type: ignore[no-untyped-def]
    report = run(ws, dns, good_zone(ws.signer), failing=(DOMAIN,))
    spf = only(report, "spf")
    assert spf.verdict == "warn"
    assert "no DNS answer for ega.or.th TXT" in spf.text
    assert only(report, "mx").verdict == "warn"


# --- DKIM ----------------------------------------------------------------------------------


def test_no_dkim_key_fails_and_gives_the_record(ws, dns: LocalDns) -> None:  # type: ignore[no-untyped-def]
    report = run(ws, dns, good_zone(ws.signer, {"mailer2568._domainkey.ega.or.th": None}))
    dkim = only(report, "dkim")
    assert dkim.verdict == "fail"
    assert dkim.text == f"no DKIM key is published at {SELECTOR}._domainkey.{DOMAIN}"
    assert f'"{ws.signer.record()}" at {SELECTOR}._domainkey.{DOMAIN}' in dkim.fix
    assert only(report, "dmarc").verdict == "pass"  # SPF passes and aligns


def test_another_key_in_dns_fails(ws, dns: LocalDns, tmp_path: Path, make_ws) -> None:  # type: ignore[no-untyped-def]
    other = make_ws(
        DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(write_key(tmp_path / "other.pem"))
    )
    zone = good_zone(
        ws.signer, {"mailer2568._domainkey.ega.or.th": {"TXT": [other.signer.record()]}}
    )
    dkim = only(run(ws, dns, zone), "dkim")
    assert dkim.verdict == "fail"
    assert "does not verify against the key" in dkim.text
    assert "not the public half of DKIM_PRIVATE_KEY_FILE" in dkim.text
    revoked = good_zone(ws.signer, {"mailer2568._domainkey.ega.or.th": {"TXT": ["v=DKIM1; p="]}})
    assert "revoked" in only(run(ws, dns, revoked), "dkim").text


def test_without_dkim_settings_the_check_says_nothing_is_signed(make_ws, tls, dns, key) -> None:  # type: ignore[no-untyped-def]
    ws = _ws(make_ws, tls, dns, key, DKIM_SELECTOR="", DKIM_PRIVATE_KEY_FILE="")
    report = run(ws, dns, good_zone(_signer_for(key)))
    assert only(report, "dkim").verdict == "warn"
    assert only(report, "dmarc").verdict == "pass"  # SPF aligns
    assert "aligns with SPF" in only(report, "dmarc").text


def _signer_for(key: Path) -> DkimSigner:
    from tests.conftest import make_settings

    settings = make_settings(key.parent, DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(key))
    assert settings.dkim is not None
    return DkimSigner(settings.dkim, f"x@{DOMAIN}")


# --- MX, TLS, PTR ------------------------------------------------------------------------------


@pytest.fixture
def coordinator_elsewhere(tmp_path: Path) -> Path:
    """The campaign with the coordinator at dga.example (the sender stays at ega.or.th)."""
    text = CAMPAIGN.read_text(encoding="utf-8")
    text = text.replace(
        'email = "thannop.sirithamwilai@ega.or.th"', 'email = "coordinator@dga.example"', 1
    )
    path = tmp_path / "campaign.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_coordinators_domain_must_take_mail(
    make_ws, tls, dns, key, coordinator_elsewhere
) -> None:  # type: ignore[no-untyped-def]
    ws = _ws(make_ws, tls, dns, key, MAILER_CAMPAIGN=str(coordinator_elsewhere))
    report = run(ws, dns, good_zone(ws.signer))
    coordinator, sender = found(report, "mx")
    assert coordinator.verdict == "fail"
    assert (
        coordinator.text
        == "dga.example (the coordinator's: replies) has no MX record and no address"
    )
    assert "publish an MX record for dga.example" in coordinator.fix
    assert sender.verdict == "pass"
    assert not report.ok
    null = good_zone(ws.signer, {"dga.example": {"MX": ["0 ."]}})
    assert "takes no mail (null MX)" in found(run(ws, dns, null), "mx")[0].text
    good = good_zone(ws.signer, {"dga.example": {"MX": ["10 mx.dga.example."]}})
    assert found(run(ws, dns, good), "mx")[0].verdict == "pass"
    bounces = good_zone(
        ws.signer,
        {
            "dga.example": {"MX": ["10 mx.dga.example."]},
            "ega.or.th": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
        },
    )
    sender = found(run(ws, dns, bounces), "mx")[1]
    assert sender.verdict == "warn"  # bounces: wanted, not vital
    assert "ega.or.th (the sender's: bounces)" in sender.text


def test_a_certificate_that_does_not_verify_fails(make_ws, tls, dns, key) -> None:  # type: ignore[no-untyped-def]
    ws = _ws(make_ws, tls, dns, key, SMTP_CA_FILE="")
    report = run(ws, dns, good_zone(ws.signer))
    tls_finding = only(report, "tls")
    assert tls_finding.verdict == "fail"
    assert "does not verify" in tls_finding.text
    assert "SMTP_CA_FILE" in tls_finding.text
    assert not report.ok


def test_a_certificate_about_to_expire_is_a_warning(make_ws, dns, key, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    soon = datetime.now(UTC) + timedelta(days=5)
    for server in tls_smtp_server(tmp_path, implicit=True, not_after=soon):
        ws = _ws(make_ws, server, dns, key, SMTP_SECURITY="ssl")
        finding = only(run(ws, dns, good_zone(ws.signer)), "tls")
    assert finding.verdict == "warn", finding.line()
    assert "day(s) left" in finding.text
    assert "renewed" in finding.fix


def test_plain_smtp_on_this_machine_passes(make_ws, smtp_server: Mailhog, dns, key) -> None:  # type: ignore[no-untyped-def]
    tls = (smtp_server.port, Path(), smtp_server)
    ws = _ws(make_ws, tls, dns, key, SMTP_SECURITY="none", SMTP_CA_FILE="")
    finding = only(run(ws, dns, good_zone(ws.signer)), "tls")
    assert finding.verdict == "pass"
    assert "no TLS, on this machine" in finding.text


def test_an_unreachable_relay_fails(make_ws, dns, key) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import free_port

    ws = _ws(make_ws, (free_port(), Path(), None), dns, key, SMTP_SECURITY="none", SMTP_CA_FILE="")  # type: ignore[arg-type]
    finding = only(run(ws, dns, good_zone(ws.signer)), "tls")
    assert finding.verdict == "fail"
    assert "cannot reach" in finding.text


def test_ptr_missing_or_not_leading_back_is_a_warning(ws, dns: LocalDns) -> None:  # type: ignore[no-untyped-def]
    missing = only(run(ws, dns, good_zone(ws.signer, {"1.0.0.127.in-addr.arpa": None})), "ptr")
    assert missing.verdict == "warn"
    assert missing.text == "127.0.0.1 has no PTR record"
    assert "PTR record" in missing.fix
    astray = good_zone(ws.signer, {"relay.ega.or.th": {"A": ["192.0.2.9"]}})
    finding = only(run(ws, dns, astray), "ptr")
    assert finding.verdict == "warn"
    assert "relay.ega.or.th, which does not lead back to it" in finding.text


def test_a_1024_bit_key_is_a_warning(make_ws, tls, dns, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = _ws(make_ws, tls, dns, write_key(tmp_path / "k1024.pem", bits=1024))
    dkim = only(run(ws, dns, good_zone(ws.signer)), "dkim")
    assert dkim.verdict == "warn"
    assert "(rsa-sha256, 1024 bits)" in dkim.text
    assert "2048-bit key" in dkim.fix
