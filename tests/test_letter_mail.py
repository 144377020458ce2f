"""The official letter as the mail's attachment (issue #16): `letter-<office>.pdf` on every
invitation, update and cancellation when the campaign's `[letter]` says `attach`, none on a
reminder; rendered once per (office, kind, SEQUENCE) and kept, so a retry sends the same
bytes; rendered ahead of the drain in a process pool; a letter that cannot be made fails
its office alone."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer.campaign import load_campaign
from mailer.check import letter_problems
from mailer.compose import Composer, OutgoingMail
from mailer.db import open_database
from mailer.delivery.drain import drain_due
from mailer.delivery.ledger import Ledger
from mailer.identity import new_message_id
from mailer.invitees.importing import import_contacts
from mailer.letter_pdf import LetterPrinter, LetterVersion
from mailer.letter_pdf.ahead import render_ahead
from mailer.letter_pdf.store import LETTERS, LetterStore, attachment
from mailer.rounds.context import delivery_context
from mailer.rounds.send import iter_recipients, send_announcement, send_round
from mailer.versions import first_version
from mailer.views.report import status
from tests.conftest import CAMPAIGN, CONTACTS, TEMPLATES, FakeClock, Mailhog, cli_env, free_port
from tests.helpers import EXPECTED_TREE, calendar_of, parse, part, tree
from tests.scripted_smtp import Script, ScriptedServer
from tests.test_cli import run
from tests.test_compose import CHIANG_MAI_AGRI, MESSAGE_ID, NOW
from tests.test_hardening_compose_headers import SYSTEM_PYTHON, gmime_read
from tests.test_letter_pdf import FIRST_DAY, SETTINGS, pdf_lines, read_back

LETTER = """
[letter]
attach = true
number = "สรอ ๐๑๐๐/ว ๑๒๓"
signer_name = "{signer}"
signer_position = ["ผู้อำนวยการสำนักงานรัฐบาลอิเล็กทรอนิกส์"]
dated = 2016-11-01

[letter.later_numbers]
1 = "สรอ ๐๑๐๐/ว ๑๔๕"
2 = "สรอ ๐๑๐๐/ว ๑๕๐"
"""
A = "saraban.th50@agri.example"


def _campaign(tmp_path: Path, signer: str = "นายสมชาย ใจดี", name: str = "letter.toml") -> Path:
    path = tmp_path / name
    path.write_text(CAMPAIGN.read_text(encoding="utf-8") + LETTER.format(signer=signer), "utf-8")
    return path


def _pdfs(raw: bytes) -> list[tuple[str | None, str | None, bytes]]:
    """(shown name, Content-Type name, bytes) of each PDF the message carries."""
    found = []
    for piece in parse(raw).walk():
        if piece.get_content_type() == "application/pdf":
            data = piece.get_payload(decode=True)
            assert isinstance(data, bytes)
            found.append((piece.get_filename(), piece.get_param("name"), data))  # type: ignore[arg-type]
    return found


READ_PARTS_WITH_GMIME = r"""
import base64, json, sys
import gi
gi.require_version("GMime", "3.0")
from gi.repository import GMime
GMime.init()
raw = base64.b64decode(sys.stdin.read())
message = GMime.Parser.new_with_stream(GMime.StreamMem.new_with_buffer(raw)).construct_message(None)
out = []
def visit(parent, part, data):
    if isinstance(part, GMime.Part):
        stream = GMime.StreamMem.new()
        part.get_content().write_to_stream(stream)
        content = bytes(stream.get_byte_array())
        out.append([part.get_content_type().get_mime_type(), part.get_filename(), len(content)])
message.foreach(visit, None)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_the_invitation_with_its_letter_passes_every_check(tmp_path: Path) -> None:
    """The message with the PDF is the message without it plus one part: every byte the
    suite checks of the invitation (headers, tree, text, calendar) is unchanged, the whole
    parses without a defect in the standard library and in GMime, and its size is said."""
    composer = Composer(load_campaign(CAMPAIGN), TEMPLATES)
    printer = LetterPrinter(composer)
    version = LetterVersion(composer.campaign.event, 0, FIRST_DAY)
    pdf = printer.render(SETTINGS, CHIANG_MAI_AGRI, version, "invitation")
    letter = attachment(CHIANG_MAI_AGRI.invitee_id, "invitation", pdf)
    plain = composer.compose(OutgoingMail(CHIANG_MAI_AGRI, "invitation", MESSAGE_ID, 0), NOW).data
    mail = OutgoingMail(CHIANG_MAI_AGRI, "invitation", MESSAGE_ID, 0, attachments=(letter,))
    raw = composer.compose(mail, NOW).data
    print(f"invitation: {len(plain):,} bytes; with the letter: {len(raw):,} bytes "
          f"(the PDF {len(pdf):,} bytes, {len(raw) - len(plain):,} in base64 with its headers)")  # fmt: skip

    start = raw.index(b"Content-Type: application/pdf")
    end = raw.index(b"--=_mailer_0_", start)
    boundary_line = raw.rindex(b"--=_mailer_0_", 0, start)
    assert raw[:boundary_line] + raw[end:] == plain  # only the letter's part was added

    message = parse(raw)
    assert tree(message) == [*EXPECTED_TREE, (1, "application/pdf", "attachment", "base64")]
    assert [p.defects for p in message.walk()] == [[]] * 7
    pdf_part = part(message, "application/pdf")
    for name in ("Content-Type", "Content-Disposition"):
        assert pdf_part[name].defects == ()
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert _pdfs(raw) == [("หนังสือเชิญ-TH-50-agri.pdf", "letter-TH-50-agri.pdf", pdf)]
    assert calendar_of(message).walk("VEVENT")[0]["SEQUENCE"] == 0

    [read] = gmime_read([raw])
    assert str(read["subject"]).startswith("ขอเชิญเข้าร่วมงานสัมมนา")
    parts = subprocess.run(
        [SYSTEM_PYTHON, "-c", READ_PARTS_WITH_GMIME],
        input=base64.b64encode(raw).decode(),
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert json.loads(parts.stdout)[-1] == ["application/pdf", "หนังสือเชิญ-TH-50-agri.pdf", len(pdf)]


@pytest.mark.slow
def test_each_office_gets_its_letter_and_a_reminder_none(
    make_ws, smtp_server: Mailhog, tmp_path: Path
) -> None:
    ws = make_ws(SMTP_PORT=str(smtp_server.port), MAILER_CAMPAIGN=str(_campaign(tmp_path)))
    import_contacts(ws.engine, CONTACTS)
    report = send_round(ws, "invitation", only=["TH-50"])
    assert report.drain.sent == 7
    messages = smtp_server.messages()
    by_office = {}
    for raw in messages:
        [(shown, name, pdf)] = _pdfs(raw)
        assert name is not None
        assert shown == "หนังสือเชิญ-" + name.removeprefix("letter-")
        by_office[name] = pdf
    assert len(by_office) == 7
    lines = [read_back(line) for line in pdf_lines(by_office["letter-TH-50-agri.pdf"])]
    assert "เรียน เกษตรจังหวัดเชียงใหม่" in lines
    assert "(นายสมชาย ใจดี)" in lines
    with ws.engine.connect() as conn:
        stored = {r.invitee_id: r for r in conn.execute(select(LETTERS))}
    assert {(r.kind, r.sequence) for r in stored.values()} == {("invitation", 0)}
    agri = stored["TH-50-agri"]
    assert bytes(agri.pdf) == by_office["letter-TH-50-agri.pdf"]
    assert agri.sha256 == hashlib.sha256(agri.pdf).hexdigest()

    send_round(ws, "reminder:reminder-day-before", only=["TH-50"])
    reminders = [raw for raw in smtp_server.messages() if raw not in messages]
    assert len(reminders) == 7
    assert all(_pdfs(raw) == [] for raw in reminders)

    _result, stats = send_announcement(ws, cancel=True)
    assert stats.sent == 7
    cancels = [raw for raw in smtp_server.messages() if raw not in messages + reminders]
    [(shown, name, pdf)] = _pdfs(cancels[0])
    assert shown is not None
    assert shown.startswith("แจ้งยกเลิก-TH-50-")
    lines = [read_back(line) for line in pdf_lines(pdf)]
    assert lines[0].startswith("ที่ สรอ ๐๑๐๐/ว ๑๔๕ ")  # the letter of SEQUENCE 1
    assert "อ้างถึง หนังสือที่ สรอ ๐๑๐๐/ว ๑๒๓ ลงวันที่ ๑ พฤศจิกายน ๒๕๕๙" in lines


@pytest.mark.slow
def test_a_retry_sends_the_same_letter(make_ws, clock: FakeClock, tmp_path: Path) -> None:
    """Deferred at the dot, the signer changed in the campaign file meanwhile: the retry
    attaches the letter as first made, not one rendered from the file as it is now."""
    first = _campaign(tmp_path, signer="นายสมชาย ใจดี")
    script = Script({A: ["data:451"]})
    with ScriptedServer(script) as server:
        ws = make_ws(
            SMTP_PORT=str(server.port), MAILER_CAMPAIGN=str(first), MAILER_MAX_FAILURES="1"
        )
        import_contacts(ws.engine, CONTACTS)
        report = send_round(ws, "invitation", only=["TH-50-agri"])
    assert report.drain.retry == 1
    assert script.data_commands == 1
    with ws.engine.connect() as conn:
        kept = bytes(conn.execute(select(LETTERS.c.pdf)).scalar_one())

    changed = _campaign(tmp_path, signer="นางสาวสมหญิง รักงาน", name="changed.toml")
    clock.advance(minutes=10)
    again = Script()
    with ScriptedServer(again) as server:
        later = make_ws(SMTP_PORT=str(server.port), MAILER_CAMPAIGN=str(changed))
        now_rendered = LetterPrinter(later.composer).render(
            later.campaign.letter, CHIANG_MAI_AGRI, LetterVersion(later.campaign.event, 0, FIRST_DAY),
            "invitation",
        )  # fmt: skip
        assert now_rendered != kept  # the change would change the letter …
        stats = drain_due(delivery_context(later), allow_new=True)  # another port
    assert stats.sent == 1
    [(_, raw)] = again.received
    [(_, _, sent)] = _pdfs(raw)
    assert sent == kept  # … but the retry sends the letter of the first attempt
    assert "(นายสมชาย ใจดี)" in [read_back(line) for line in pdf_lines(sent)]


@pytest.mark.slow
def test_a_letter_that_cannot_be_made_fails_its_office_alone(
    make_ws, smtp_server: Mailhog, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    layout = templates / "letter" / "letter.html"
    layout.write_text(layout.read_text().replace(
        "<body>", '<body>{% if invitee.invitee_id == "TH-50-agri" %}{{ no_such_value }}{% endif %}'
    ))  # fmt: skip
    ws = make_ws(
        SMTP_PORT=str(smtp_server.port),
        MAILER_CAMPAIGN=str(_campaign(tmp_path)),
        MAILER_TEMPLATES=str(templates),
    )
    import_contacts(ws.engine, CONTACTS)
    seen: list[tuple[int, int, str]] = []
    report = send_round(ws, "invitation", only=["TH-50"], letters=lambda *a: seen.append(a))
    assert (report.drain.sent, report.drain.failed) == (6, 1)
    [problem] = report.drain.problems
    assert problem.invitee_id == "TH-50-agri"
    assert "letter.html" in problem.reply
    assert "no_such_value" in problem.reply
    assert len(seen) == 7
    assert seen[-1][:2] == (7, 7)
    [failed] = [s[2] for s in seen if not s[2].endswith(": stored")]
    assert "letter.html, line" in failed
    assert "TH-50-agri" in failed
    rows = {i.invitee_id: i for i in status(ws.ledger(), ws.campaign).invitees}
    assert rows["TH-50-agri"].delivery == "failed"
    assert len(smtp_server.messages()) == 6


@pytest.mark.slow
def test_letters_are_rendered_ahead_in_a_pool_once(make_ws, tmp_path: Path) -> None:
    ws = make_ws(MAILER_CAMPAIGN=str(_campaign(tmp_path)))
    import_contacts(ws.engine, CONTACTS)
    ledger, campaign = ws.ledger(), ws.campaign
    first_version(ledger, campaign.event)
    rows = iter_recipients(ws.engine, ["TH-50", "TH-57"])
    ledger.enqueue(rows, "invitation", 0, lambda i: new_message_id(campaign, i, "invitation"))
    seen: list[tuple[int, int, str]] = []
    report = render_ahead(ledger, ws.composer, workers=2, progress=lambda *a: seen.append(a))
    assert (report.processes, report.rendered, report.failed) == (2, 14, {})
    assert sorted(s[0] for s in seen) == list(range(1, 15))
    assert {s[1] for s in seen} == {14}
    again = render_ahead(ledger, ws.composer, workers=2)
    assert (again.rendered, again.already) == (0, 14)
    with ws.engine.connect() as conn:
        pooled = bytes(
            conn.execute(
                select(LETTERS.c.pdf).where(LETTERS.c.invitee_id == "TH-50-agri")
            ).scalar_one()
        )
    here = LetterPrinter(ws.composer).render(
        campaign.letter, CHIANG_MAI_AGRI, LetterVersion(campaign.event, 0, FIRST_DAY), "invitation"
    )
    assert pooled == here  # a pool process makes the bytes this process makes


@pytest.mark.slow
def test_preview_writes_the_letter(tmp_path: Path) -> None:
    """`mailer preview --pdf`: the office's letter, from the campaign as it stands; with
    `attach` on, the previewed message carries the same letter."""
    env = cli_env(tmp_path, SMTP_PORT=str(free_port()), MAILER_CAMPAIGN=str(_campaign(tmp_path)))
    assert run(env, "import", str(CONTACTS)).exit_code == 0
    pdf, eml = tmp_path / "letter.pdf", tmp_path / "p.eml"
    result = run(env, "preview", "TH-50-agri", "--pdf", str(pdf), "--eml", str(eml))
    assert result.exit_code == 0, result.output
    assert f"Wrote {pdf}" in result.output
    lines = [read_back(line) for line in pdf_lines(pdf.read_bytes())]
    assert lines[0].startswith("ที่ สรอ ๐๑๐๐/ว ๑๒๓ ")
    assert "เรียน เกษตรจังหวัดเชียงใหม่" in lines
    assert "(นายสมชาย ใจดี)" in lines
    [(_, _, attached)] = _pdfs(eml.read_bytes())
    assert attached == pdf.read_bytes()
    plain = cli_env(tmp_path, SMTP_PORT=str(free_port()))  # the shipped campaign: attach off
    result = run(plain, "preview", "TH-50-agri", "--pdf", str(pdf), "--eml", str(eml))
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert _pdfs(eml.read_bytes()) == []


def test_check_refuses_an_attached_letter_that_is_still_the_example(tmp_path: Path) -> None:
    """`mailer check` with `attach = true`: the example number and signer, no emblem, a font
    fontconfig does not know, each named with the key to set; a real one passes."""
    example = tmp_path / "example.toml"
    example.write_text(
        CAMPAIGN.read_text(encoding="utf-8") + '\n[letter]\nattach = true\nfont = "No Such Font"\n',
        "utf-8",
    )
    problems = letter_problems(load_campaign(example).letter)
    assert [p.split(" ", 2)[1] for p in problems] == ["number", "signer_name", "emblem:", "font"]
    assert "set number = " in problems[0]
    assert 'emblem = "garuda.png"' in problems[2]
    assert "'No Such Font' is not a font fontconfig knows" in problems[3]
    (tmp_path / "garuda.png").write_bytes(b"\x89PNG")
    real = _campaign(tmp_path)
    real.write_text(
        real.read_text("utf-8").replace("\n[letter]\n", '\n[letter]\nemblem = "garuda.png"\n')
    )
    assert letter_problems(load_campaign(real).letter) == []
    off = load_campaign(CAMPAIGN).letter  # the shipped campaign: no letter attached
    assert not off.attach
    assert letter_problems(off) == []


@pytest.mark.slow
def test_mailer_check_names_the_letters_problems(tmp_path: Path) -> None:
    example = tmp_path / "example.toml"
    example.write_text(
        CAMPAIGN.read_text(encoding="utf-8") + "\n[letter]\nattach = true\n", "utf-8"
    )
    env = cli_env(tmp_path, SMTP_PORT=str(free_port()), MAILER_CAMPAIGN=str(example))
    result = run(env, "check", "--contacts", str(CONTACTS))
    assert result.exit_code == 1
    assert "[letter] number is the example" in result.output
    assert "[letter] emblem" in result.output


def test_the_first_letter_stored_is_the_one_every_attempt_gets(
    database_url: str, clock: FakeClock
) -> None:
    """Two workers that each rendered the letter: the second keeps the first's bytes (SQLite
    and PostgreSQL alike), and `missing` names what is still to render."""
    engine = open_database(database_url)
    store = LetterStore(
        Ledger(engine, "egov-seminar-2559", clock), Composer(load_campaign(CAMPAIGN), TEMPLATES)
    )
    key = ("TH-50-agri", "invitation", 0)
    assert store.missing([key, key, ("TH-50-prov", "invitation", 0)]) == [
        key,
        ("TH-50-prov", "invitation", 0),
    ]
    assert store.keep(key, b"%PDF first") == b"%PDF first"
    assert store.keep(key, b"%PDF second") == b"%PDF first"
    assert store.stored(key) == b"%PDF first"
    assert store.stored(("TH-50-agri", "update", 1)) is None
    assert store.missing([key]) == []
    with engine.connect() as conn:
        row = conn.execute(select(LETTERS)).one()
    assert row.sha256 == hashlib.sha256(b"%PDF first").hexdigest()
    engine.dispose()
