"""`mailer check --deliverability` against a real DNS server on loopback (tests/dns_server.py)
serving a good zone and broken ones, and against real SMTP servers with TLS: each broken
zone gets its verdict (pass / warn / fail) and what to change; any fail exits 1."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.deliverability.dmarc import aligned
from mailer.deliverability.findings import Finding
from mailer.deliverability.report import DeliverabilityReport, check_deliverability
from mailer.deliverability.resolver import Dns
from mailer.delivery.dkim import DkimSigner
from tests.conftest import CAMPAIGN, CONTACTS, Mailhog, cli_env
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


# --- DKIM and DMARC --------------------------------------------------------------------------


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


def test_dmarc_reject_with_a_misaligned_from_fails(make_ws, tls, dns, key) -> None:  # type: ignore[no-untyped-def]
    ws = _ws(make_ws, tls, dns, key, DKIM_DOMAIN="bulk-mailer.example")
    assert ws.signer.domain == "bulk-mailer.example"
    zone = good_zone(
        ws.signer, {"ega.or.th": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"], "MX": ["10 mx.ega.or.th."]}}
    )
    report = run(ws, dns, zone)
    assert only(report, "dkim").verdict == "pass"  # it verifies, for bulk-mailer.example
    dmarc = only(report, "dmarc")
    assert dmarc.verdict == "fail", dmarc.line()
    assert "From ega.or.th is not aligned with DKIM d=bulk-mailer.example" in dmarc.text
    assert "receivers will reject these messages" in dmarc.text
    assert "DKIM_DOMAIN=ega.or.th" in dmarc.fix
    zone[f"_dmarc.{DOMAIN}"] = {"TXT": ["v=DMARC1; p=none"]}
    assert only(run(ws, dns, zone), "dmarc").verdict == "warn"


def test_a_subdomain_signature_aligns_relaxed_not_strict(make_ws, tls, dns, key) -> None:  # type: ignore[no-untyped-def]
    ws = _ws(make_ws, tls, dns, key, DKIM_DOMAIN="mail.ega.or.th")
    no_spf = {"TXT": ["v=spf1 -all"], "MX": ["10 mx.ega.or.th."]}
    relaxed = only(run(ws, dns, good_zone(ws.signer, {"ega.or.th": no_spf})), "dmarc")
    assert relaxed.verdict == "pass", relaxed.line()
    assert "aligns with DKIM d=mail.ega.or.th" in relaxed.text
    strict = good_zone(
        ws.signer,
        {"ega.or.th": no_spf, "_dmarc.ega.or.th": {"TXT": ["v=DMARC1; p=quarantine; adkim=s"]}},
    )
    dmarc = only(run(ws, dns, strict), "dmarc")
    assert dmarc.verdict == "fail"
    assert "receivers will quarantine" in dmarc.text


def test_no_dmarc_is_a_warning_with_the_record_to_publish(ws, dns: LocalDns) -> None:  # type: ignore[no-untyped-def]
    dmarc = only(run(ws, dns, good_zone(ws.signer, {"_dmarc.ega.or.th": None})), "dmarc")
    assert dmarc.verdict == "warn"
    assert 'TXT record "v=DMARC1; p=none;' in dmarc.fix
    assert "at _dmarc.ega.or.th" in dmarc.fix


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


def _sender_at(tmp_path: Path, address: str) -> Path:
    """The shipped campaign with the sender (From and the envelope) at `address`."""
    text = CAMPAIGN.read_text(encoding="utf-8")
    head, sep, tail = text.partition("[sender]")
    tail = tail.replace('email = "thannop.sirithamwilai@ega.or.th"', f'email = "{address}"', 1)
    path = tmp_path / f"campaign-{address.partition('@')[2]}.toml"
    path.write_text(head + sep + tail, encoding="utf-8")
    return path


def dmarc_of(  # type: ignore[no-untyped-def]
    make_ws, tls, dns: LocalDns, key: Path, tmp_path: Path, sender: str, d: str, zone: Zone
) -> Finding:
    """The DMARC finding for From `sender` signed with d=`d` (its key published), SPF
    failing for the relay (so only DKIM can align), and `zone` on top."""
    campaign = _sender_at(tmp_path, sender)
    ws = _ws(make_ws, tls, dns, key, MAILER_CAMPAIGN=str(campaign), DKIM_DOMAIN=d)
    from_domain = sender.partition("@")[2]
    base: dict[str, dict] = {
        from_domain: {"TXT": ["v=spf1 -all"]},
        ws.signer.record_name: {"TXT": [ws.signer.record()]},
    }
    report = run(ws, dns, {**base, **zone})
    assert only(report, "dkim").verdict == "pass", only(report, "dkim").line()
    return only(report, "dmarc")


@pytest.mark.parametrize(
    ("domain", "other", "relaxed"),
    [
        ("dbd.go.th", "mail.dbd.go.th", True),
        ("saraban.dbd.go.th", "mail.dbd.go.th", True),  # siblings under one organisation
        ("x.co.th", "y.co.th", False),  # two organisations under one public suffix
        ("x.co.th", "co.th", False),  # a public suffix is no organisation's domain
        ("ega.or.th", "bulk-mailer.example", False),
        ("MAIL.Ega.or.th.", "ega.or.th", True),
        ("a.b.github.io", "c.b.github.io", True),  # the list's private part counts too
        ("a.github.io", "b.github.io", False),
    ],
)
def test_relaxed_alignment_compares_organisational_domains(
    domain: str, other: str, relaxed: bool
) -> None:
    """RFC 7489 §3.2, by the Public Suffix List (publicsuffixlist's bundled copy)."""
    assert aligned(domain, other, strict=False) is relaxed
    assert aligned(other, domain, strict=False) is relaxed
    assert aligned(domain, other, strict=True) is (domain.lower().rstrip(".") == other)


def test_a_government_subdomain_signature_aligns_relaxed_not_strict(
    make_ws, tls, dns, key, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """From saraban@dbd.go.th signed d=mail.dbd.go.th: relaxed aligns (one organisation,
    dbd.go.th, go.th being the public suffix); adkim=s does not."""
    relaxed = {"_dmarc.dbd.go.th": {"TXT": ["v=DMARC1; p=reject"]}}
    finding = dmarc_of(
        make_ws, tls, dns, key, tmp_path, "saraban@dbd.go.th", "mail.dbd.go.th", relaxed
    )
    assert finding.verdict == "pass", finding.line()
    assert finding.text == (
        "_dmarc.dbd.go.th: p=reject; From dbd.go.th aligns with DKIM d=mail.dbd.go.th"
    )
    assert finding.domain == "dbd.go.th"
    strict = {"_dmarc.dbd.go.th": {"TXT": ["v=DMARC1; p=reject; adkim=s"]}}
    finding = dmarc_of(
        make_ws, tls, dns, key, tmp_path, "saraban@dbd.go.th", "mail.dbd.go.th", strict
    )
    assert finding.verdict == "fail", finding.line()
    assert "not aligned with DKIM d=mail.dbd.go.th (adkim=s: only the same domain" in finding.text
    assert "receivers will reject these messages" in finding.text
    assert "DKIM_DOMAIN=dbd.go.th" in finding.fix


def test_siblings_under_one_organisation_align(make_ws, tls, dns, key, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """From saraban.dbd.go.th (its own record) and d=mail.dbd.go.th: neither is under the
    other, but both belong to dbd.go.th."""
    zone = {"_dmarc.saraban.dbd.go.th": {"TXT": ["v=DMARC1; p=quarantine"]}}
    finding = dmarc_of(
        make_ws, tls, dns, key, tmp_path, "info@saraban.dbd.go.th", "mail.dbd.go.th", zone
    )
    assert finding.verdict == "pass", finding.line()
    assert "aligns with DKIM d=mail.dbd.go.th" in finding.text


def test_two_organisations_under_co_th_do_not_align(make_ws, tls, dns, key, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    zone = {"_dmarc.x.co.th": {"TXT": ["v=DMARC1; p=reject"]}}
    finding = dmarc_of(make_ws, tls, dns, key, tmp_path, "info@x.co.th", "y.co.th", zone)
    assert finding.verdict == "fail", finding.line()
    assert "From x.co.th is not aligned with DKIM d=y.co.th" in finding.text
    assert "(adkim=s" not in finding.text


def test_a_record_at_a_public_suffix_is_never_asked(make_ws, tls, dns, key, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """x.co.th is its own organisational domain: a record at _dmarc.co.th (which no
    receiver reads) neither applies nor makes y.co.th align with it."""
    zone = {"_dmarc.co.th": {"TXT": ["v=DMARC1; p=reject"]}}
    finding = dmarc_of(make_ws, tls, dns, key, tmp_path, "info@x.co.th", "y.co.th", zone)
    assert finding.verdict == "warn", finding.line()
    assert finding.text == "no DMARC record for x.co.th"
    assert "at _dmarc.x.co.th" in finding.fix
    assert ("_dmarc.co.th", "TXT") not in dns.asked


def test_the_organisational_domains_record_applies_to_a_subdomain(
    make_ws, tls, dns, key, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """RFC 7489 §6.6.3: no _dmarc.mail.dbd.go.th, so _dmarc.dbd.go.th (and nothing above:
    go.th is a public suffix)."""
    zone = {"_dmarc.dbd.go.th": {"TXT": ["v=DMARC1; p=quarantine"]}}
    finding = dmarc_of(
        make_ws, tls, dns, key, tmp_path, "saraban@mail.dbd.go.th", "bulk-mailer.example", zone
    )
    assert finding.verdict == "fail", finding.line()
    assert finding.text.startswith(
        "_dmarc.dbd.go.th (the organisational domain of mail.dbd.go.th): p=quarantine; "
        "From mail.dbd.go.th is not aligned with DKIM d=bulk-mailer.example"
    )
    asked = [name for name, rtype in dns.asked if rtype == "TXT" and name.startswith("_dmarc.")]
    assert asked[-2:] == ["_dmarc.mail.dbd.go.th", "_dmarc.dbd.go.th"]
    assert "_dmarc.go.th" not in asked
    nothing = dmarc_of(
        make_ws, tls, dns, key, tmp_path, "saraban@mail.dbd.go.th", "bulk-mailer.example", {}
    )
    assert nothing.text == (
        "no DMARC record for mail.dbd.go.th nor for its organisational domain dbd.go.th"
    )
    assert 'rua=mailto:postmaster@dbd.go.th" at _dmarc.dbd.go.th' in nothing.fix


@pytest.mark.parametrize(
    ("records", "verdict", "said"),
    [
        # sp= of the organisational domain decides for a subdomain...
        ({"_dmarc.dbd.go.th": "v=DMARC1; p=none; sp=reject"}, "fail", "sp=reject"),
        ({"_dmarc.dbd.go.th": "v=DMARC1; p=reject; sp=none"}, "warn", "sp=none"),
        # ... without sp=, its p= does
        ({"_dmarc.dbd.go.th": "v=DMARC1; p=reject"}, "fail", "p=reject"),
        # the subdomain's own record: its p=, whatever the parent's sp=
        (
            {
                "_dmarc.mail.dbd.go.th": "v=DMARC1; p=none",
                "_dmarc.dbd.go.th": "v=DMARC1; sp=reject; p=reject",
            },
            "warn",
            "_dmarc.mail.dbd.go.th: p=none",
        ),
        # an invalid sp= leaves p= in force
        ({"_dmarc.dbd.go.th": "v=DMARC1; p=reject; sp=bogus"}, "fail", "p=reject"),
    ],
)
def test_the_subdomain_policy(  # type: ignore[no-untyped-def]
    make_ws, tls, dns, key, tmp_path: Path, records: dict[str, str], verdict: str, said: str
) -> None:
    zone = {name: {"TXT": [record]} for name, record in records.items()}
    finding = dmarc_of(
        make_ws, tls, dns, key, tmp_path, "saraban@mail.dbd.go.th", "bulk-mailer.example", zone
    )
    assert finding.verdict == verdict, finding.line()
    assert f"{said}; From mail.dbd.go.th is not aligned" in finding.text


@pytest.mark.parametrize(
    ("records", "said"),
    [
        (["v=DMARC1; p=reject", "v=DMARC1; p=none"], "_dmarc.dbd.go.th has 2 DMARC records"),
        (["v=DMARC1; rua=mailto:d@dbd.go.th"], "p= is not none, quarantine or reject"),
        (["v=DMARC1; p=block"], "p= is not none, quarantine or reject"),
    ],
)
def test_a_record_receivers_cannot_apply_is_a_warning(  # type: ignore[no-untyped-def]
    make_ws, tls, dns, key, tmp_path: Path, records: list[str], said: str
) -> None:
    zone = {"_dmarc.dbd.go.th": {"TXT": [*records, "some other text"]}}
    finding = dmarc_of(
        make_ws, tls, dns, key, tmp_path, "saraban@dbd.go.th", "bulk-mailer.example", zone
    )
    assert finding.verdict == "warn", finding.line()
    assert said in finding.text
    assert finding.fix


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


# --- the command ------------------------------------------------------------------------------


def _cli(tmp_path: Path, tls, dns: LocalDns, key: Path, *args: str, **extra: str):  # type: ignore[no-untyped-def]
    """`mailer check --deliverability *args`; stdout and stderr apart (`result.stdout`)."""
    port, ca_file, _box = tls
    env = cli_env(
        tmp_path,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        SMTP_SECURITY="starttls",
        SMTP_CA_FILE=str(ca_file),
        DKIM_SELECTOR=SELECTOR,
        DKIM_PRIVATE_KEY_FILE=str(key),
        MAILER_DNS_SERVER=dns.address,
        **extra,
    )
    return CliRunner().invoke(app, ["check", "--deliverability", *args], env=env)


def test_the_command_exits_0_when_nothing_fails(
    tmp_path: Path, tls, dns: LocalDns, key: Path
) -> None:  # type: ignore[no-untyped-def]
    dns.serve(good_zone(_signer_for(key)))
    result = _cli(tmp_path, tls, dns, key)
    assert result.exit_code == 0, result.output
    assert f"DNS: {dns.address}" in result.output
    assert "✓ pass ผ่าน · SPF (สิทธิ์ส่งในนามโดเมน): ega.or.th" in result.output
    assert "! warn ควรแก้ไข · Relay (เซิร์ฟเวอร์ส่ง)" in result.output
    assert "Deliverability: 6 passed, 1 warning(s), 0 failed." in result.output
    assert "PRIVATE KEY" not in result.output


def test_the_command_exits_1_on_any_fail(tmp_path: Path, tls, dns: LocalDns, key: Path) -> None:  # type: ignore[no-untyped-def]
    dns.serve(
        good_zone(
            _signer_for(key), {"_dmarc.ega.or.th": None, "ega.or.th": {"MX": ["10 mx.ega.or.th."]}}
        )
    )
    result = _cli(tmp_path, tls, dns, key)
    assert result.exit_code == 1, result.output
    assert (
        "✗ fail ไม่ผ่าน · SPF (สิทธิ์ส่งในนามโดเมน): ega.or.th publishes no SPF record →" in result.output
    )
    assert "Error: deliverability: 4 passed, 2 warning(s), 1 failed" in result.output


def test_a_1024_bit_key_is_a_warning(make_ws, tls, dns, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = _ws(make_ws, tls, dns, write_key(tmp_path / "k1024.pem", bits=1024))
    dkim = only(run(ws, dns, good_zone(ws.signer)), "dkim")
    assert dkim.verdict == "warn"
    assert "(rsa-sha256, 1024 bits)" in dkim.text
    assert "2048-bit key" in dkim.fix


# --- --json, --contacts ------------------------------------------------------------------------


def test_json_gives_every_check_with_its_domain_verdict_and_fix(
    tmp_path: Path, tls, dns: LocalDns, key: Path
) -> None:  # type: ignore[no-untyped-def]
    dns.serve(good_zone(_signer_for(key)))
    result = _cli(tmp_path, tls, dns, key, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # nothing but the document on stdout
    assert data["ok"] is True
    assert data["sender_domain"] == data["coordinator_domain"] == DOMAIN
    assert data["dns"] == dns.address
    assert data["counts"] == {"pass": 6, "warn": 1, "fail": 0}
    checks = {c["check"]: c for c in data["checks"]}
    assert list(checks) == ["relay", "spf", "dkim", "dmarc", "mx", "tls", "ptr"]
    assert checks["spf"] == {
        "check": "spf",
        "title": "SPF (สิทธิ์ส่งในนามโดเมน)",
        "domain": DOMAIN,
        "verdict": "pass",
        "verdict_words": "pass ผ่าน",
        "text": f"{DOMAIN} (v=spf1 ip4:127.0.0.1 -all) for the relay 127.0.0.1: pass, by "
        f"ip4:127.0.0.1 in {DOMAIN}",
        "fix": "",
    }
    assert checks["relay"]["verdict"] == "warn"
    assert checks["relay"]["domain"] == "127.0.0.1"
    assert checks["relay"]["fix"].startswith("a relay on this machine sends out")
    assert checks["dkim"]["domain"] == checks["dmarc"]["domain"] == checks["mx"]["domain"] == DOMAIN
    assert checks["ptr"]["domain"] == "127.0.0.1"
    assert "PRIVATE KEY" not in result.output


def test_json_exits_1_on_a_fail_as_the_text_does(
    tmp_path: Path, tls, dns: LocalDns, key: Path
) -> None:  # type: ignore[no-untyped-def]
    dns.serve(good_zone(_signer_for(key), {"ega.or.th": {"MX": ["10 mx.ega.or.th."]}}))
    result = _cli(tmp_path, tls, dns, key, "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False
    (spf,) = [c for c in data["checks"] if c["check"] == "spf"]
    assert spf["verdict"] == "fail"
    assert spf["verdict_words"] == "fail ไม่ผ่าน"
    assert 'publish the TXT record "v=spf1 ip4:127.0.0.1 ~all" at ega.or.th' in spf["fix"]
    assert result.stderr.startswith(
        'Error: deliverability: 5 passed, 1 warning(s), 1 failed; fix "verdict": "fail"'
    )


def test_json_alone_is_a_bad_flag(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--json"], env=cli_env(tmp_path))
    assert result.exit_code == 2
    assert "--json goes with --deliverability" in result.output


@pytest.mark.parametrize(
    ("changes", "check", "said"),
    [
        ({"ega.or.th": {"MX": ["10 mx.ega.or.th."]}}, "spf", "ega.or.th publishes no SPF record"),
        (
            {"ega.or.th": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"], "MX": ["10 mx.ega.or.th."]}},
            "spf",
            "for the relay 127.0.0.1: fail, by -all in ega.or.th",
        ),
        ({f"{SELECTOR}._domainkey.{DOMAIN}": None}, "dkim", "no DKIM key is published at"),
        ({"ega.or.th": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}}, "mx", "has no MX record"),
    ],
    ids=["no SPF", "SPF without the relay", "no DKIM key", "no MX"],
)
def test_the_command_catches_each_broken_zone(
    tmp_path: Path, tls, dns: LocalDns, key: Path, changes, check: str, said: str
) -> None:  # type: ignore[no-untyped-def]
    """The issue's broken zones, through `mailer check --deliverability --json`: the named
    check fails, and only it; exit 1 before a single invitation goes out."""
    dns.serve(good_zone(_signer_for(key), changes))
    result = _cli(tmp_path, tls, dns, key, "--json")
    assert result.exit_code == 1, result.output
    failing = [c for c in json.loads(result.stdout)["checks"] if c["verdict"] == "fail"]
    assert [c["check"] for c in failing] == [check], failing
    assert said in failing[0]["text"]
    assert failing[0]["fix"]


def test_the_command_catches_dmarc_reject_with_a_misaligned_from(
    tmp_path: Path, tls, dns: LocalDns, key: Path
) -> None:  # type: ignore[no-untyped-def]
    """The fifth broken zone: p=reject, signed for another domain, SPF not passing."""
    signer = _signer_for(key)
    zone = good_zone(
        signer, {"ega.or.th": {"TXT": ["v=spf1 ip4:192.0.2.1 ~all"], "MX": ["10 mx.ega.or.th."]}}
    )
    zone[f"{SELECTOR}._domainkey.bulk-mailer.example"] = {"TXT": [signer.record()]}
    dns.serve(zone)
    result = _cli(tmp_path, tls, dns, key, "--json", DKIM_DOMAIN="bulk-mailer.example")
    assert result.exit_code == 1, result.output
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["dkim"]["verdict"] == "pass"
    assert checks["spf"]["verdict"] == "warn"  # softfail
    assert checks["dmarc"]["verdict"] == "fail"
    assert "not aligned with DKIM d=bulk-mailer.example" in checks["dmarc"]["text"]
    assert "receivers will reject these messages" in checks["dmarc"]["text"]


def _contacts(tmp_path: Path, *, broken: bool) -> Path:
    """Three rows of the shipped contacts; `broken`: the third with a bad address."""
    lines = CONTACTS.read_text(encoding="utf-8").splitlines()[:4]
    if broken:
        lines[3] = lines[3].replace("@", "@@", 1)
    path = tmp_path / "new-contacts.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_contacts_and_deliverability_both_run(
    tmp_path: Path, tls, dns: LocalDns, key: Path
) -> None:  # type: ignore[no-untyped-def]
    """Review: `--contacts FILE --deliverability` ignored the file. A coordinator checking a
    new contact file before a batch gets both answers and one exit code."""
    dns.serve(good_zone(_signer_for(key)))
    good = _contacts(tmp_path, broken=False)
    result = _cli(tmp_path, tls, dns, key, "--contacts", str(good))
    assert result.exit_code == 0, result.output
    assert f"✓ {good}: 3 valid invitee row(s)" in result.stdout
    assert "template invitation: rendered for 3 invitee(s)" in result.stdout
    assert "✓ pass ผ่าน · SPF (สิทธิ์ส่งในนามโดเมน): ega.or.th" in result.stdout
    assert "All checks passed. Deliverability: 6 passed, 1 warning(s), 0 failed." in result.stdout

    bad = _contacts(tmp_path, broken=True)
    result = _cli(tmp_path, tls, dns, key, "--contacts", str(bad))
    assert result.exit_code == 1, result.output
    assert "✗ " in result.stdout
    assert "✓ pass ผ่าน · DKIM (ลายเซ็นดิจิทัล)" in result.stdout  # still checked
    assert result.stderr.startswith("Error: check found 1 problem(s); see above")

    dns.serve(good_zone(_signer_for(key), {"ega.or.th": {"MX": ["10 mx.ega.or.th."]}}))
    result = _cli(tmp_path, tls, dns, key, "--contacts", str(bad), "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["counts"]["fail"] == 1
    assert data["check"]["contacts"] == str(bad)
    assert data["check"]["ok"] is False
    assert len(data["check"]["errors"]) == 1
    assert f"{bad}: 2 valid invitee row(s)" in data["check"]["notes"]
    assert result.stderr == (
        "Error: check found 1 problem(s); deliverability: 5 passed, 1 warning(s), 1 failed; "
        'fix "verdict": "fail" before sending (ไม่ผ่าน: ควรแก้ก่อนส่ง)\n'
    )
