"""Where replies come from: a local Maildir, an mbox file, or a folder of `.eml` files.

Each yields (key, raw bytes); the key is stable for the same message in the same source,
so a re-sync stores nothing twice. Nothing in the source is changed, moved or marked.
"""

from __future__ import annotations

import hashlib
import mailbox
from collections.abc import Iterator
from pathlib import Path

from mailer.errors import MailerError


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def maildir(path: Path) -> Iterator[tuple[str, bytes]]:
    if not (path / "cur").is_dir() and not (path / "new").is_dir():
        raise MailerError(f"{path} is not a Maildir (it has no cur/ or new/ folder)")
    box = mailbox.Maildir(path, create=False)
    for key in sorted(box.keys()):
        with box.get_file(key) as handle:
            yield f"maildir:{key}", handle.read()


def mbox(path: Path) -> Iterator[tuple[str, bytes]]:
    if not path.is_file():
        raise MailerError(f"{path}: no such mbox file")
    for message in mailbox.mbox(path, create=False):
        raw = message.as_bytes()
        yield f"mbox:{_digest(raw)}", raw


def eml_dir(path: Path) -> Iterator[tuple[str, bytes]]:
    if not path.is_dir():
        raise MailerError(f"{path}: no such folder of .eml files")
    for file in sorted(path.glob("*.eml")):
        raw = file.read_bytes()
        yield f"eml:{file.name}:{_digest(raw)[:16]}", raw
