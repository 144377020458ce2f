"""What one deliverability check found: a `Finding` (pass / warn / fail, what was seen,
what to change), named in English and Thai as the coordinator reads it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailer.errors import cut
from mailer.redact import printable

Verdict = Literal["pass", "warn", "fail"]

TITLES = {
    "relay": "Relay (เซิร์ฟเวอร์ส่ง)",
    "spf": "SPF (สิทธิ์ส่งในนามโดเมน)",
    "dkim": "DKIM (ลายเซ็นดิจิทัล)",
    "dmarc": "DMARC (นโยบายของโดเมนผู้ส่ง)",
    "mx": "MX (ที่รับอีเมล)",
    "tls": "TLS (การเข้ารหัสและใบรับรอง)",
    "ptr": "PTR (ชื่อย้อนกลับของเซิร์ฟเวอร์ส่ง)",
}
VERDICTS: dict[Verdict, tuple[str, str, str]] = {  # mark, style, words
    "pass": ("✓", "green", "pass ผ่าน"),
    "warn": ("!", "yellow", "warn ควรแก้ไข"),
    "fail": ("✗", "red", "fail ไม่ผ่าน"),
}


@dataclass(frozen=True)
class Finding:
    check: str  # a key of TITLES
    verdict: Verdict
    domain: str  # the domain, host or address the check is about
    text: str  # what was found, and where
    fix: str = ""  # what to change (empty for a pass)

    def __post_init__(self) -> None:
        # Text from DNS (a TXT record, a name) may carry escape codes or line breaks that
        # would draw a fake verdict on the terminal: one printable line, cut.
        object.__setattr__(self, "text", _one_line(self.text))
        object.__setattr__(self, "fix", _one_line(self.fix))
        object.__setattr__(self, "domain", _one_line(self.domain))

    @property
    def title(self) -> str:
        return TITLES[self.check]

    def line(self) -> str:
        """The finding as one line after its mark: verdict, check, what, the fix."""
        words = VERDICTS[self.verdict][2]
        fix = f" → {self.fix}" if self.fix else ""
        return f"{words} · {self.title}: {self.text}{fix}"

    def to_json(self) -> dict[str, str]:
        """For `check --deliverability --json`: what the line says, field by field (the
        check's and the verdict's names in English and Thai, as the line has them)."""
        return {
            "check": self.check,
            "title": self.title,
            "domain": self.domain,
            "verdict": self.verdict,
            "verdict_words": VERDICTS[self.verdict][2],
            "text": self.text,
            "fix": self.fix,
        }


def passed(check: str, domain: str, text: str) -> Finding:
    return Finding(check, "pass", domain, text)


def warned(check: str, domain: str, text: str, fix: str) -> Finding:
    return Finding(check, "warn", domain, text, fix)


def failed(check: str, domain: str, text: str, fix: str) -> Finding:
    return Finding(check, "fail", domain, text, fix)


def _one_line(text: str, limit: int = 600) -> str:
    shown = "".join(c if printable(c) else " " for c in text)
    return cut(" ".join(shown.split()), limit)
