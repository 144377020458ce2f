"""The PDF's text layer says what the letter says: each glyph maps to its own character.

WeasyPrint maps a glyph to the text of the first cluster it was drawn in. Thai breaks that:
HarfBuzz draws ำ as ํ + า, and a consonant with its vowel and tone mark is one cluster, so
after "สำนักงาน" every า read back as ำ, and "สู่" read back as "ส่่" (what a clerk would copy
or a search would find). Here, right before WeasyPrint writes its fonts, every glyph the
font's cmap names gets that character (positional variants such as `uni0E0D.uline` that of
their base glyph); WeasyPrint's guess stays only for glyphs no character names.

Left as it must be: ำ reads back as its two parts ํ + า (U+0E4D U+0E32, its Unicode
compatibility decomposition: one glyph cannot stand for both า and ำ), nikhahit before a
tone mark as drawn (น้ำ → นํ้า); NFKC-normalising search and copy read them as written.
"""

from __future__ import annotations

import io
import re
from functools import lru_cache
from typing import Any

from fontTools.ttLib import TTFont

_UNI = re.compile(r"^uni([0-9A-F]{4})$")


@lru_cache(maxsize=16)
def _characters(content: bytes, index: int) -> dict[int, tuple[str, ...]]:
    """Glyph id → the characters the font maps to it (a font file is read once a process)."""
    font = TTFont(io.BytesIO(content), fontNumber=index, lazy=True)
    by_name: dict[str, list[str]] = {}
    for code, name in sorted(font.getBestCmap().items()):
        if not _private(code):  # Thai fonts also map their variants from U+F700…: not text
            by_name.setdefault(name, []).append(chr(code))
    found: dict[int, tuple[str, ...]] = {}
    for gid, name in enumerate(font.getGlyphOrder()):
        base = name.split(".", 1)[0]  # uni0E48.low_left: a place for ่, still ่
        if name in by_name:
            found[gid] = tuple(by_name[name])
        elif base in by_name:
            found[gid] = tuple(by_name[base])
        elif (match := _UNI.match(base)) is not None and not _private(int(match[1], 16)):
            found[gid] = (chr(int(match[1], 16)),)
    return found


def _private(code: int) -> bool:
    return 0xE000 <= code <= 0xF8FF


def correct(font: Any) -> None:
    """Give each glyph of a WeasyPrint `Font` drawn so far its own character."""
    if getattr(font, "bitmap", False) or not font.to_unicode:
        return
    characters = _characters(font.file_content, font.index)
    for gid, guessed in font.to_unicode.items():
        own = characters.get(gid)
        if own and guessed not in own:
            font.to_unicode[gid] = own[0]


class TrueTextFonts(dict[Any, Any]):
    """`Document.fonts` that corrects the glyphs' characters when WeasyPrint reads the fonts
    to write them (after every page is drawn: `build_fonts_dictionary` calls `values()`)."""

    def values(self) -> Any:
        for font in super().values():
            correct(font)
        return super().values()
