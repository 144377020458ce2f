"""The command `mailer check --deliverability`: its text and exit code, `--json`, and
`--contacts FILE` with it; each broken zone of the issue caught through the command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from tests.conftest import CONTACTS, Mailhog, cli_env
from tests.dns_server import LocalDns, local_dns
from tests.test_deliverability import (
    DOMAIN,
    SELECTOR,
    _signer_for,
    good_zone,
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


@pytest.mark.parametrize("other", [["--deliverability"], ["--contacts", "contacts.csv"]])
def test_auth_with_another_check_is_a_bad_flag(tmp_path: Path, other: list[str]) -> None:
    result = CliRunner().invoke(app, ["check", "--auth", *other], env=cli_env(tmp_path))
    assert result.exit_code == 2
    assert "--auth signs in and logs in to the servers, alone" in result.output


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
