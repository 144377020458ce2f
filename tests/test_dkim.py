"""DKIM: every kind of message mailer sends (invitation, reminder, update, cancel, the
--test-to sample) carries a signature that dkimpy verifies against the public key served
by a real DNS server on loopback; a message changed after signing does not verify; a key
others may read is refused, and no key ever reaches the output."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from typer.testing import CliRunner

from mailer.cli import app
from mailer.compose import OutgoingMail
from mailer.deliverability.report import SAMPLE
from mailer.deliverability.resolver import Dns
from mailer.delivery.dkim import DkimSigner, headers_to_sign, verifies
from mailer.errors import MailerError, SettingsError
from mailer.invitees.importing import import_contacts
from mailer.rounds.send import send_announcement, send_round, send_test
from tests.conftest import CAMPAIGN, CONTACTS, Mailhog, cli_env, make_settings
from tests.dns_server import LocalDns, local_dns
from tests.helpers import decoded, raw_headers

SELECTOR = "mailer2568"
DOMAIN = "ega.or.th"  # the sender's, in the shipped campaign
NOW = datetime(2016, 11, 1, 2, 0, tzinfo=UTC)


def write_key(path: Path, kind: str = "rsa", bits: int = 2048) -> Path:
    """A new private key as `openssl genpkey` writes it (PKCS #8 PEM), mode 600."""
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else None
    if key is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def dns() -> Iterator[LocalDns]:
    yield from local_dns()


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key(tmp_path_factory.mktemp("keys") / "dkim.pem")


def publish(server: LocalDns, signer: DkimSigner) -> Dns:
    """Serve the signer's public key at <selector>._domainkey.<d>; the resolver to ask."""
    server.serve({signer.record_name: {"TXT": [signer.record()]}})
    return Dns((("127.0.0.1", server.port),))


def _signed_ws(make_ws, port: int, key: Path, **env: str):  # type: ignore[no-untyped-def]
    ws = make_ws(SMTP_PORT=str(port), DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(key), **env)
    import_contacts(ws.engine, CONTACTS)
    return ws


@pytest.mark.slow
def test_every_kind_of_message_verifies_against_the_key_in_dns(
    make_ws, smtp_server: Mailhog, rsa_key: Path, dns: LocalDns, tmp_path: Path
) -> None:
    ws = _signed_ws(make_ws, smtp_server.port, rsa_key)
    assert ws.signer is not None
    resolver = publish(dns, ws.signer)
    assert send_round(ws, "invitation", only=["TH-50"]).drain.sent == 7
    assert send_round(ws, "reminder:followup-no-reply", only=["TH-50"]).drain.sent == 7
    send_test(ws, "coordinator.test@example.org", only=["TH-50-agri"])
    moved_file = tmp_path / "moved.toml"
    moved_file.write_text(
        CAMPAIGN.read_text(encoding="utf-8").replace("T13:00:00", "T14:00:00"), encoding="utf-8"
    )
    moved = _signed_ws(make_ws, smtp_server.port, rsa_key, MAILER_CAMPAIGN=str(moved_file))
    assert send_announcement(moved, cancel=False)[1].sent == 7
    assert send_announcement(moved, cancel=True)[1].sent == 7
    received = smtp_server.messages()
    assert len(received) == 7 * 4 + 1
    subjects = set()
    for raw in received:
        headers = raw_headers(raw)
        (signature,) = [v for k, v in headers if k == "DKIM-Signature"]
        assert f"d={DOMAIN};" in signature
        assert f"s={SELECTOR};" in signature
        assert "c=relaxed/relaxed;" in signature
        assert "a=rsa-sha256;" in signature
        assert verifies(raw, resolver.txt_lookup), decoded(dict(headers)["Subject"])
        subjects.add(decoded(dict(headers)["Subject"]).split(":")[0])
    assert any(s.startswith("[ทดสอบ]") for s in subjects)  # the sample is signed too
    assert any(s.startswith("แจ้งเปลี่ยนแปลง") for s in subjects)
    asked = {name for name, rtype in dns.asked if rtype == "TXT"}
    assert f"{SELECTOR}._domainkey.{DOMAIN}" in asked


def test_the_signed_headers_are_those_that_matter(make_ws, rsa_key: Path) -> None:
    ws = make_ws(DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(rsa_key))
    raw = ws.composer.compose(OutgoingMail(SAMPLE, "invitation", "<h@x>", 0), NOW).data
    signature = dict(raw_headers(raw))["DKIM-Signature"]
    signed = "".join(signature.split("h=", 1)[1].split(";", 1)[0].split()).split(":")
    for name in ("from", "to", "subject", "date", "message-id", "reply-to", "mime-version",
                 "content-type", "content-language", "x-auto-response-suppress"):  # fmt: skip
        assert signed.count(name) == 2, name  # present once, and once more: no second one
    assert signed.count("cc") == 1  # absent, signed as absent: a Cc added later breaks it
    assert "received" not in signed
    assert "bcc" not in signed
    assert headers_to_sign(b"From: a@b\r\nFrom: c@d\r\n\r\nx").count(b"from") == 3


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda raw: raw.replace(b"\r\nSubject: ", b"\r\nSubject: RE ", 1), id="subject"
        ),
        pytest.param(
            lambda raw: raw.replace(b"\r\nTo: ", b"\r\nCc: x@evil.example\r\nTo: ", 1),
            id="added-cc",
        ),
        pytest.param(
            lambda raw: raw.replace(b"\r\nFrom: ", b"\r\nFrom: x@evil.example\r\nFrom: ", 1),
            id="second-from",
        ),
        pytest.param(lambda raw: raw[:-40] + b"A" + raw[-39:], id="body"),
        pytest.param(lambda raw: raw.replace(b"\r\nDate: ", b"\r\nDate: Mon, ", 1), id="date"),
    ],
)
def test_a_message_changed_after_signing_does_not_verify(
    make_ws, rsa_key: Path, dns: LocalDns, change
) -> None:  # type: ignore[no-untyped-def]
    ws = make_ws(DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(rsa_key))
    resolver = publish(dns, ws.signer)
    raw = ws.composer.compose(OutgoingMail(SAMPLE, "invitation", "<c@x>", 0), NOW).data
    assert verifies(raw, resolver.txt_lookup)
    changed = change(raw)
    assert changed != raw
    assert not verifies(changed, resolver.txt_lookup)


def test_relaxed_canonicalization_survives_refolding_and_case(
    make_ws, rsa_key: Path, dns: LocalDns
) -> None:
    ws = make_ws(DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(rsa_key))
    resolver = publish(dns, ws.signer)
    raw = ws.composer.compose(OutgoingMail(SAMPLE, "invitation", "<r@x>", 0), NOW).data
    relayed = raw.replace(b"\r\nSubject: ", b"\r\nsubject:   ", 1)  # what relays may do
    assert verifies(relayed, resolver.txt_lookup)


def test_a_key_not_in_dns_or_another_key_does_not_verify(
    make_ws, rsa_key: Path, dns: LocalDns, tmp_path: Path
) -> None:
    ws = make_ws(DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(rsa_key))
    raw = ws.composer.compose(OutgoingMail(SAMPLE, "invitation", "<k@x>", 0), NOW).data
    resolver = Dns((("127.0.0.1", dns.port),))
    dns.serve({})
    assert not verifies(raw, resolver.txt_lookup)
    other = make_ws(
        DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(write_key(tmp_path / "o.pem"))
    )
    publish(dns, other.signer)
    assert not verifies(raw, resolver.txt_lookup)


def test_ed25519_is_an_option(make_ws, dns: LocalDns, tmp_path: Path) -> None:
    key = write_key(tmp_path / "ed.pem", "ed25519")
    ws = make_ws(
        DKIM_SELECTOR="ed", DKIM_PRIVATE_KEY_FILE=str(key), DKIM_ALGORITHM="ed25519-sha256"
    )
    resolver = publish(dns, ws.signer)
    assert ws.signer.record().startswith("v=DKIM1; k=ed25519; p=")
    raw = ws.composer.compose(OutgoingMail(SAMPLE, "invitation", "<e@x>", 0), NOW).data
    assert "a=ed25519-sha256;" in dict(raw_headers(raw))["DKIM-Signature"]
    assert verifies(raw, resolver.txt_lookup)
    assert not verifies(raw.replace(b"\r\nSubject: ", b"\r\nSubject: x", 1), resolver.txt_lookup)


@pytest.mark.parametrize("form", ["pkcs1-rsa", "seed-ed25519"])
def test_the_other_key_files_in_use_are_read(
    make_ws, dns: LocalDns, tmp_path: Path, form: str
) -> None:
    """`openssl genrsa -traditional` (BEGIN RSA PRIVATE KEY) and the base64 seed of
    `dknewkey --ktype ed25519`."""
    path = tmp_path / "key"
    if form == "pkcs1-rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        algorithm = "rsa-sha256"
    else:
        seed = ed25519.Ed25519PrivateKey.generate().private_bytes_raw()
        path.write_text(base64.b64encode(seed).decode() + "\n")
        algorithm = "ed25519-sha256"
    path.chmod(0o600)
    ws = make_ws(DKIM_SELECTOR="k", DKIM_PRIVATE_KEY_FILE=str(path), DKIM_ALGORITHM=algorithm)
    resolver = publish(dns, ws.signer)
    raw = ws.composer.compose(OutgoingMail(SAMPLE, "invitation", "<f@x>", 0), NOW).data
    assert verifies(raw, resolver.txt_lookup)


def test_dkim_domain_names_the_signing_domain(make_ws, rsa_key: Path, dns: LocalDns) -> None:
    ws = make_ws(
        DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(rsa_key), DKIM_DOMAIN="mail.EGA.or.th"
    )
    assert ws.signer.domain == "mail.ega.or.th"
    resolver = publish(dns, ws.signer)
    raw = ws.composer.compose(OutgoingMail(SAMPLE, "invitation", "<d@x>", 0), NOW).data
    assert "d=mail.ega.or.th;" in dict(raw_headers(raw))["DKIM-Signature"]
    assert verifies(raw, resolver.txt_lookup)


def test_without_dkim_settings_nothing_is_signed(make_ws) -> None:
    ws = make_ws()
    assert ws.signer is None
    raw = ws.composer.compose(OutgoingMail(SAMPLE, "invitation", "<n@x>", 0), NOW).data
    assert "DKIM-Signature" not in dict(raw_headers(raw))


# --- the key file -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_others_may_read_is_refused(tmp_path: Path, rsa_key: Path, mode: int) -> None:
    key = tmp_path / "shared.pem"
    key.write_bytes(rsa_key.read_bytes())
    key.chmod(mode)
    with pytest.raises(SettingsError) as caught:
        make_settings(tmp_path, DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(key))
    (problem,) = caught.value.problems
    assert str(key) in problem
    assert f"chmod 600 {key}" in problem
    assert f"{mode:o}" in problem


def test_the_refusal_is_an_error_on_the_command_line_and_quotes_no_key(
    tmp_path: Path, rsa_key: Path
) -> None:
    key = tmp_path / "open.pem"
    key.write_bytes(rsa_key.read_bytes())
    key.chmod(0o644)
    env = cli_env(tmp_path, DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(key))
    result = CliRunner().invoke(app, ["check"], env=env)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert f"chmod 600 {key}" in result.output
    assert "PRIVATE KEY" not in result.output
    body = rsa_key.read_text().splitlines()[1]
    assert body not in result.output


def test_the_key_is_read_once_and_never_shown(tmp_path: Path, rsa_key: Path) -> None:
    settings = make_settings(tmp_path, DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(rsa_key))
    assert settings.dkim is not None
    body = rsa_key.read_text().splitlines()[1]
    assert body in settings.dkim.key.value  # read at start: the file is not opened again
    for shown in (repr(settings), str(settings), repr(settings.dkim)):
        assert body not in shown
        assert "PRIVATE KEY" not in shown


def test_a_file_that_is_no_key_is_named_not_quoted(tmp_path: Path) -> None:
    secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    key = tmp_path / "ssh.pem"
    key.write_text(secret)
    key.chmod(0o600)
    with pytest.raises(SettingsError) as caught:
        make_settings(tmp_path, DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(key))
    (problem,) = caught.value.problems
    assert str(key) in problem
    assert "PEM RSA private key" in problem
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in problem
    ed = write_key(tmp_path / "ed.pem", "ed25519")  # an Ed25519 key with rsa-sha256
    with pytest.raises(SettingsError, match="is not a PEM RSA private key"):
        make_settings(tmp_path, DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(ed))


def _prime(bits: int, seed: int) -> int:
    """A prime of `bits` bits (Miller-Rabin with fixed bases), with e=65537 invertible."""
    candidate = (1 << (bits - 1)) | (seed * 0x9E3779B97F4A7C15 % (1 << (bits - 2))) | 1
    while True:
        candidate += 2
        if candidate % 65537 == 1:
            continue
        d, r = candidate - 1, 0
        while d % 2 == 0:
            d, r = d // 2, r + 1
        for base in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
            x = pow(base, d, candidate)
            if x in (1, candidate - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, candidate)
                if x == candidate - 1:
                    break
            else:
                break
        else:
            return candidate


def test_a_key_receivers_would_ignore_is_refused(make_ws, tmp_path: Path) -> None:
    short = tmp_path / "short.pem"  # cryptography makes none under 1024 bits: built here
    p, q = _prime(384, 3), _prime(384, 5)
    e, d = 65537, pow(65537, -1, (p - 1) * (q - 1))
    public = rsa.RSAPublicNumbers(e, p * q)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public)
    short.write_bytes(
        numbers.private_key(unsafe_skip_rsa_key_validation=True).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    short.chmod(0o600)
    ws = make_ws(DKIM_SELECTOR=SELECTOR, DKIM_PRIVATE_KEY_FILE=str(short))
    with pytest.raises(
        MailerError, match=r"is a 76[78]-bit RSA key; receivers ignore .* under 1024"
    ):
        ws.composer  # noqa: B018  (built before anything is composed)


def test_bad_dkim_settings_are_listed_with_the_others(tmp_path: Path, rsa_key: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        make_settings(
            tmp_path,
            SMTP_PORT="x",
            DKIM_SELECTOR="bad_selector!",
            DKIM_PRIVATE_KEY_FILE=str(tmp_path / "missing.pem"),
            DKIM_ALGORITHM="rsa-sha1",
            DKIM_DOMAIN="not a domain",
            MAILER_DNS_SERVER="127.0.0.1:5353, dns.example:53",
        )
    problems = caught.value.problems
    assert any(p.startswith("SMTP_PORT=") for p in problems)
    assert any(p.startswith("DKIM_SELECTOR='bad_selector!'") for p in problems)
    assert any(p.startswith("DKIM_PRIVATE_KEY_FILE=") and "missing.pem" in p for p in problems)
    assert any(p.startswith("DKIM_ALGORITHM='rsa-sha1'") for p in problems)
    assert any(p.startswith("DKIM_DOMAIN='not a domain'") for p in problems)
    assert any(p.startswith("MAILER_DNS_SERVER='dns.example:53'") for p in problems)
    assert len(problems) == 6
    with pytest.raises(SettingsError, match="DKIM_SELECTOR is set but DKIM_PRIVATE_KEY_FILE"):
        make_settings(tmp_path, DKIM_SELECTOR=SELECTOR)
    with pytest.raises(SettingsError, match="DKIM_PRIVATE_KEY_FILE is set but DKIM_SELECTOR"):
        make_settings(tmp_path, DKIM_PRIVATE_KEY_FILE=str(rsa_key))
    with pytest.raises(SettingsError, match="messages are signed only when"):
        make_settings(tmp_path, DKIM_DOMAIN="ega.or.th")


def test_dns_servers_are_read_with_their_ports(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, MAILER_DNS_SERVER="127.0.0.1:5353, [::1]:53, 192.0.2.1")
    assert settings.dns_servers == (("127.0.0.1", 5353), ("::1", 53), ("192.0.2.1", 53))
    assert make_settings(tmp_path).dns_servers == ()


@pytest.mark.slow
def test_the_coordinators_digest_is_signed_too(
    make_ws, smtp_server: Mailhog, rsa_key: Path, dns: LocalDns, tmp_path: Path
) -> None:
    """Review: the digest was built beside the composer and went out unsigned (with DMARC
    p=reject, the coordinator's own digest refused)."""
    from mailer.rounds.digest import preview_digest

    with_digest = tmp_path / "digest.toml"
    with_digest.write_text(
        CAMPAIGN.read_text(encoding="utf-8") + "\n[digest]\ntime = 08:00:00\n", encoding="utf-8"
    )
    ws = _signed_ws(make_ws, smtp_server.port, rsa_key, MAILER_CAMPAIGN=str(with_digest))
    assert ws.signer is not None
    resolver = publish(dns, ws.signer)
    raw = preview_digest(ws).data
    assert raw.startswith(b"DKIM-Signature:")
    assert verifies(raw, resolver.txt_lookup)
