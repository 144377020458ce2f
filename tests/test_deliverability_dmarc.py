"""DMARC in `mailer check --deliverability`, against the local DNS server: the record of the
From domain or of its organisational domain (RFC 7489 §6.6.3, `sp=`), and relaxed alignment
by organisational domain (§3.2, the Public Suffix List) or strict (`adkim=s`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.deliverability.dmarc import aligned
from mailer.deliverability.findings import Finding
from tests.conftest import CAMPAIGN, Mailhog
from tests.dns_server import LocalDns, Zone, local_dns
from tests.test_deliverability import (
    DOMAIN,
    _ws,
    good_zone,
    only,
    run,
)
from tests.test_dkim import write_key
from tests.tls_smtp import tls_smtp_server


@pytest.fixture(scope="module")
def dns() -> Iterator[LocalDns]:
    yield from local_dns()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key(tmp_path_factory.mktemp("keys") / "dkim.pem")


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[int, Path, Mailhog]]:
    yield from tls_smtp_server(tmp_path, implicit=False)


@pytest.fixture
def ws(make_ws, tls, dns, key):  # type: ignore[no-untyped-def]
    return _ws(make_ws, tls, dns, key)


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
