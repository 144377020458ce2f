"""Jinja2 templates → a `Letter` (subject, plain text, HTML).

Each message kind has a folder under `templates/` with `subject.txt`, `body.txt` and
`body.html`; they extend the shared `_layout.txt` / `_layout.html`. HTML is autoescaped,
every undefined name is an error, and templates receive plain values only.

Templates run in Jinja2's immutable sandbox: no underscore attributes (so no way from
`self` or a value to Python's globals), no changing the values handed in, and no
repetition or power that would build a huge value. Whatever goes wrong while a template
renders becomes a `TemplateProblem` naming the template file and line, found in the
traceback Jinja2 rewrites to point at template lines.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailer import thai
from mailer.errors import TemplateProblem, cut

PARTS = ("subject.txt", "body.txt", "body.html")


@dataclass(frozen=True)
class Letter:
    subject: str
    text: str
    html: str


_MAX_LENGTH = 100_000  # the longest string or list `*` may build in a template
_MAX_BITS = 10_000  # the largest number `**` may build


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with `*` and `**` bounded (Jinja2's own example)."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._safe: dict[tuple[type, str], bool] = {}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Jinja2's answer depends only on the object's type and the name (its checks are
        `isinstance` tests and name lists), so it is worked out once per pair: the sandbox
        then costs a dictionary look-up per attribute instead of a dozen `isinstance`."""
        key = (type(obj), attr)
        safe = self._safe.get(key)
        if safe is None:
            safe = self._safe[key] = super().is_safe_attribute(obj, attr, value)
        return safe

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | bytes | list | tuple) and isinstance(count, int)
                if sized and _weight(seq) * count > _MAX_LENGTH:
                    raise SecurityError(
                        f"a repetition {_weight(seq) * count:,} items long is too long "
                        f"(at most {_MAX_LENGTH:,})"
                    )
            return operator.mul(left, right)
        whole = isinstance(left, int) and isinstance(right, int) and right > 0
        if whole and max(left.bit_length(), 1) * right > _MAX_BITS:
            raise SecurityError(f"a power of {right:,} makes a number too long")
        return operator.pow(left, right)


def _weight(seq: str | bytes | list[Any] | tuple[Any, ...]) -> int:
    """What repeating `seq` once costs: its characters, or for a list the characters of the
    texts in it (["x" * 100000] * 100000 would be ten thousand million characters once
    joined)."""
    return _weighed(seq, depth=0)


def _weighed(value: Any, depth: int) -> int:
    """Characters a value builds once printed, nested lists included (`[[s]] * 90000` built
    8·10⁹); past 4 levels a list counts as too heavy to repeat at all."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, list | tuple | dict | set):
        if depth >= 4:
            return _MAX_LENGTH + 1
        total = 0
        for item in value:
            total += _weighed(item, depth + 1) + 1
            if total > _MAX_LENGTH:
                return total  # heavy enough to refuse: no need to weigh the rest
        return total
    return 1


def environment(folder: Path, zone: ZoneInfo, *, autoescape: bool) -> jinja2.Environment:
    """A sandboxed environment over the template folder, with the Thai filters: every
    template of mailer (letters, the attendance sheet) is compiled by one of these."""
    env = _Sandbox(
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
        text_env = environment(templates_dir, zone, autoescape=False)
        html_env = environment(templates_dir, zone, autoescape=True)
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
                rendered[part] = _bounded(template, context, self.folder / part)
            except TemplateProblem:
                raise
            except Exception as exc:  # any error of a template's making: file, line, what
                raise render_problem(exc, self.folder.parent, str(self.folder / part), who) from exc
        subject = " ".join(rendered["subject.txt"].split())
        if not subject:
            raise TemplateProblem(f"{self.folder / 'subject.txt'}: renders an empty subject")
        text = rendered["body.txt"].strip()
        while "\n\n\n" in text:  # at most one blank line in a row (as re.sub(r"\n{3,}"), faster)
            text = text.replace("\n\n\n", "\n\n")
        text += "\n"
        return Letter(subject=subject, text=text, html=rendered["body.html"])

    def blocks(self, context: dict[str, Any], who: str, names: tuple[str, ...]) -> dict[str, str]:
        """The named blocks of `body.html` alone (escaped HTML), as `render` would fill them:
        the PDF letter (`mailer.letter_pdf`) sets the e-mail's own text in its layout."""
        template = self._templates["body.html"]
        path = self.folder / "body.html"
        found = {}
        for name in names:
            try:
                found[name] = _bounded(template, context, path, template.blocks[name])
            except TemplateProblem:
                raise
            except KeyError as exc:
                raise TemplateProblem(
                    f"{path}: has no block {name!r}; the letter needs it"
                ) from exc
            except Exception as exc:  # as in `render`: file, line, what
                raise render_problem(exc, self.folder.parent, str(path), who) from exc
        return found


MAX_PART = 1_000_000  # characters a letter's subject, text or HTML may run to


def _bounded(
    template: jinja2.Template,
    context: dict[str, Any],
    path: Path,
    block: Callable[[Context], Iterator[str]] | None = None,
) -> str:
    """`template.render(context)` (or only its `block`), stopped once it runs past `MAX_PART`
    characters (a loop in a template would otherwise fill the memory with one letter). It
    walks the compiled template's own generator, as `render` does (Jinja2's `generate` wraps
    every piece in another generator: ~14 µs a letter), and lets Jinja2 rewrite an error's
    traceback so the template's file and line show in it, as `render` does."""
    pieces: list[str] = []
    size = 0
    try:
        render = block or template.root_render_func
        for piece in render(template.new_context(context)):
            size += len(piece)
            if size > MAX_PART:
                raise TemplateProblem(
                    f"{path}: renders more than {MAX_PART:,} characters; a letter is a few "
                    "thousand — check the template for a loop or a repetition"
                )
            pieces.append(piece)
    except TemplateProblem:
        raise
    except Exception:
        template.environment.handle_exception()
    return "".join(pieces)


def render_problem(exc: Exception, templates_dir: Path, where: str, who: str) -> TemplateProblem:
    """Any error a template made while rendering, as a `TemplateProblem` naming the
    innermost template file and line (`where` when no template frame is found)."""
    where = _template_line(exc.__traceback__, templates_dir) or where
    said = cut(str(exc), 120, flat=True)  # the error may quote a value from the data
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateProblem(
            f"{where}: {cut(exc.message or str(exc), 120, flat=True)} (rendering for {who}); "
            "check the name against the template guide in README.md"
        )
    if isinstance(exc, SecurityError):
        return TemplateProblem(
            f"{where}: not allowed in a template: {said} (rendering for {who}); "
            "templates run sandboxed: use the values and filters of the template guide "
            "in README.md"
        )
    if isinstance(exc, RecursionError):
        return TemplateProblem(
            f"{where}: the templates extend or include one another in a loop "
            f"(rendering for {who}); a letter extends _layout.html or _layout.txt"
        )
    if isinstance(exc, jinja2.TemplateError):
        return TemplateProblem(f"{where}: {said} (rendering for {who})")
    return TemplateProblem(f"{where}: {type(exc).__name__}: {said} (rendering for {who})")


def _template_line(tb: TracebackType | None, folder: Path) -> str | None:
    """ "path, line N" of the innermost template frame: Jinja2 rewrites tracebacks so that a
    template's frames carry its file name and its own line numbers."""
    found = None
    root = str(folder)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(root) and not filename.endswith(".py"):
            found = f"{filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return found
