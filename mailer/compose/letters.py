"""Jinja2 templates → a `Letter` (subject, plain text, HTML).

Each message kind has a folder under `templates/` with `subject.txt`, `body.txt` and
`body.html`; they extend the shared `_layout.txt` / `_layout.html`. HTML is autoescaped,
every undefined name is an error, and templates receive plain values only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from mailer import thai
from mailer.errors import TemplateProblem

PARTS = ("subject.txt", "body.txt", "body.html")


@dataclass(frozen=True)
class Letter:
    subject: str
    text: str
    html: str


def _environment(folder: Path, zone: ZoneInfo, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # compiled once per composer; no stat() of the layout per message
    )
    env.filters.update(
        thai_digits=thai.thai_digits,
        thai_date=lambda d: thai.thai_date(d, zone),
        thai_short_date=lambda d: thai.thai_short_date(d, zone),
        thai_time=lambda d: thai.thai_time(d, zone),
        thai_time_range=lambda s, e: thai.thai_time_range(s, e, zone),
        thai_when=lambda s, e: thai.thai_when(s, e, zone),
    )
    return env


class LetterRenderer:
    """Compiles one template folder once; renders it for any context."""

    def __init__(self, templates_dir: Path, kind: str, zone: ZoneInfo) -> None:
        self.folder = templates_dir / kind
        if not self.folder.is_dir():
            raise TemplateProblem(
                f"{self.folder}: no such template folder; create it with "
                f"{', '.join(PARTS)} (copy templates/invitation/ as a start)"
            )
        text_env = _environment(templates_dir, zone, autoescape=False)
        html_env = _environment(templates_dir, zone, autoescape=True)
        self._templates: dict[str, jinja2.Template] = {}
        for part in PARTS:
            env = html_env if part.endswith(".html") else text_env
            name = f"{kind}/{part}"
            try:
                self._templates[part] = env.get_template(name)
            except jinja2.TemplateNotFound as exc:
                raise TemplateProblem(
                    f"{templates_dir / name}: missing (needed: {exc.name}); every template "
                    f"folder needs {', '.join(PARTS)}"
                ) from exc
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateProblem(
                    f"{exc.filename or templates_dir / name}, line {exc.lineno}: {exc.message}"
                ) from exc

    def render(self, context: dict[str, Any], who: str) -> Letter:
        rendered = {}
        for part, template in self._templates.items():
            try:
                rendered[part] = template.render(context)
            except jinja2.UndefinedError as exc:
                raise TemplateProblem(
                    f"{self.folder / part}: {exc.message} (rendering for {who}); "
                    "check the name against the template guide in README.md"
                ) from exc
            except jinja2.TemplateError as exc:
                raise TemplateProblem(f"{self.folder / part}: {exc} (rendering for {who})") from exc
        subject = " ".join(rendered["subject.txt"].split())
        if not subject:
            raise TemplateProblem(f"{self.folder / 'subject.txt'}: renders an empty subject")
        text = rendered["body.txt"].strip()
        while "\n\n\n" in text:  # at most one blank line in a row (as re.sub(r"\n{3,}"), faster)
            text = text.replace("\n\n\n", "\n\n")
        text += "\n"
        return Letter(subject=subject, text=text, html=rendered["body.html"])
