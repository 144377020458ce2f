"""Lines break between Thai words, never inside one, as PyThaiNLP reads the words.

Pango breaks Thai with libthai's dictionary, which is right about syllables but also breaks
inside compounds: measured on the 2559 letter, "หน่วย|งาน" (twice), "ความ|พร้อม", "คำ|เชิญ"
and "ขอ|ความกรุณา" ended one line and began the next. A WORD JOINER does not stop it (libthai
still offers a break after U+2060), and holding every word in a no-wrap span made a letter
seven times slower (0.56 s instead of 0.08 s). So only the words Pango itself would break
are held: each Thai word of PyThaiNLP's `word_tokenize` (newmm) in which Pango finds a line
break is set in `<span class="w">` (white-space: nowrap), with a ZERO WIDTH SPACE (U+200B)
on either side so the line may still break before and after it. Only text between tags is
touched, never a tag or an entity.
"""

from __future__ import annotations

import re
from functools import lru_cache

from markupsafe import Markup

ZWSP = "\u200b"
_TAG = re.compile(r"(<[^>]*>)")
_THAI = re.compile(r"[\u0e01-\u0e5b]")


def hold_words(html: str) -> Markup:
    """`html` (escaped markup) with the Thai words Pango would break held together."""
    parts = _TAG.split(html)
    return Markup("".join(part if part.startswith("<") else _text(part) for part in parts))


@lru_cache(maxsize=4096)
def _text(text: str) -> str:
    """One run of text between tags (the same paragraphs recur in every office's letter)."""
    if not _THAI.search(text):
        return text
    from pythainlp.tokenize import word_tokenize  # its dictionary loads once, on first use

    words = word_tokenize(text, engine="newmm", keep_whitespace=True)
    return "".join(f'{ZWSP}<span class="w">{w}</span>{ZWSP}' if _breakable(w) else w for w in words)


@lru_cache(maxsize=65536)
def _breakable(word: str) -> bool:
    """Whether Pango (libthai) would break this Thai word inside."""
    if len(word) < 2 or not _THAI.match(word):
        return False
    # WeasyPrint's own call of pango_get_log_attrs: the same breaks its lines are laid with.
    from weasyprint.text.line_break import get_log_attrs

    attrs = get_log_attrs(word, "th")
    return any(attrs[i].is_line_break for i in range(1, len(word)))
