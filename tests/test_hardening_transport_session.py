"""Hardening: a Thai password logs in, and a sample with no clear answer is an `Error:`."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiosmtpd.smtp import LoginPassword
from typer.testing import CliRunner

from mailer.cli import app
from mailer.errors import TransportError
from tests.conftest import CONTACTS, cli_env
from tests.scripted_smtp import Script, ScriptedServer

MESSAGE = b"Subject: sample\r\n\r\nHello\r\n"
THAI_PASSWORD = "รหัสผ่าน-2559"


@pytest.mark.parametrize(
    ("username", "password"),
    [("coordinator", THAI_PASSWORD), ("ผู้ประสานงาน", "s3cret"), ("coordinator", "s3cret")],
    ids=["thai-password", "thai-username", "ascii"],
)
def test_a_login_beyond_ascii_goes_by_auth_plain_in_utf8(
    make_ws, username: str, password: str
) -> None:
    script = Script()
    with ScriptedServer(script, login=(username, password)) as server:
        ws = make_ws(SMTP_PORT=str(server.port), SMTP_USERNAME=username, SMTP_PASSWORD=password)
        with ws.transport() as transport:
            delivered = transport.send("coordinator@ega.example", ["me@ega.example"], MESSAGE)
    assert delivered.reply.code == 250
    assert script.logins == [LoginPassword(username.encode(), password.encode())]
    assert len(script.received) == 1


def test_a_wrong_thai_password_is_a_refused_login(make_ws) -> None:
    with ScriptedServer(Script(), login=("coordinator", THAI_PASSWORD)) as server:
        ws = make_ws(SMTP_PORT=str(server.port), SMTP_USERNAME="coordinator", SMTP_PASSWORD="ผิด")
        with pytest.raises(TransportError) as caught:
            ws.transport().connect()
    message = str(caught.value)
    assert "refused the login of SMTP_USERNAME='coordinator'" in message
    assert "535" in message
    assert "ผิด" not in message


def test_a_thai_password_without_auth_plain_is_not_supported(make_ws) -> None:
    with ScriptedServer(
        Script(), login=("coordinator", THAI_PASSWORD), without_auth=["PLAIN"]
    ) as s:
        ws = make_ws(
            SMTP_PORT=str(s.port), SMTP_USERNAME="coordinator", SMTP_PASSWORD=THAI_PASSWORD
        )
        with pytest.raises(TransportError) as caught:
            ws.transport().connect()
    message = str(caught.value)
    assert (
        "SMTP_USERNAME or SMTP_PASSWORD has characters beyond ASCII (Thai, say), which only "
        f"AUTH PLAIN can carry, and the SMTP server 127.0.0.1:{s.port} (SMTP_SECURITY=none) "
        "offers only AUTH LOGIN. Use a password of ASCII letters" in message
    )
    assert THAI_PASSWORD not in message


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path, SMTP_TIMEOUT="1")


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        ("drop-after-data", "connection lost after the message was handed over"),
        (
            "data-cut",
            "unclear answer after the message was handed over: a line without a reply code, or lines with two codes: '25'",
        ),
        ("data-say:hello", "unclear answer after the message was handed over: a line without"),
        ("stall-after-data", "connection lost after the message was handed over: "),
    ],
)
@pytest.mark.slow
def test_test_to_without_a_clear_answer_says_check_the_mailbox(
    env: dict[str, str], plan: str, why: str
) -> None:
    script = Script({"me@example.org": [plan]}, stall=2.0)
    with ScriptedServer(script) as server:
        env = {**env, "SMTP_PORT": str(server.port)}
        runner = CliRunner()
        assert runner.invoke(app, ["import", str(CONTACTS)], env=env).exit_code == 0
        result = runner.invoke(
            app,
            ["send", "invitations", "--test-to", "me@example.org"],
            env=env,
            catch_exceptions=False,
        )
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert text.startswith(
        f"Error: the sample to me@example.org was handed over to 127.0.0.1:{server.port}, "
        f"but no clear answer came back ({why}"
    ), text
    assert text.endswith(
        "It may or may not have been delivered: check the mailbox of me@example.org before "
        "sending another sample"
    ), text
    assert "Traceback" not in result.output
    assert script.received_by("me@example.org") == 1
