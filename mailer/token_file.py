"""MAILER_TOKEN_FILE: where a user's sign-in (its refresh token) is kept, one JSON object
with a section per provider.

It signs in as the mailbox, so it is trusted only as a regular file of the user mailer runs
as, not a symbolic link, with no group or other permission bits, in a folder group and
others cannot write to (they could swap it). Each check is made on the opened descriptor,
which is then read (no stat-then-open race). Writing replaces it atomically: a temporary
file of mode 0600 made exclusively in the same folder (`tempfile.mkstemp`), synced, renamed
over it. Readers and writers share `<file>.lock` (an advisory lock: the file itself is
replaced, so it cannot be locked), held across a token refresh so two processes never
refresh from one refresh token and never write back each other's stale copy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pwd
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mailer.oauth import OAuthError

_OPEN = os.O_NOFOLLOW | os.O_CLOEXEC
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def shown(path: Path) -> str:
    return f"MAILER_TOKEN_FILE={str(path)!r}"


def not_ours(path: Path, why: str, provider: str | None = None) -> OAuthError:
    """The file (or one provider's section of it) is not what mailer wrote."""
    again = (
        "remove it and sign in again with `mailer auth login microsoft|google`"
        if provider is None
        else f"run `mailer auth login {provider}` to sign in again (it replaces that section)"
    )
    return OAuthError(f"{shown(path)} is not mailer's sign-in file ({why}); {again}")


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _refused(path: Path, exc: OSError, doing: str) -> OAuthError:
    """An OSError opening the file or its lock, said for the operator."""
    if exc.errno == errno.ELOOP:
        return OAuthError(
            f"{shown(path)}: {Path(exc.filename or path).name} is a symbolic link, which "
            "mailer does not follow (another user could point it elsewhere); point "
            "MAILER_TOKEN_FILE at the file itself"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return OAuthError(
            f"cannot {doing} {shown(path)}: permission denied. Run mailer as the user who "
            f"signed in (the file's owner; now {_user(os.geteuid())}), or sign in as this "
            "user with MAILER_TOKEN_FILE naming a file of its own"
        )
    return OAuthError(f"cannot {doing} {shown(path)}: {exc.strerror}")


def _check_folder(path: Path) -> None:
    """Refuse a folder group or others may write to: they could replace the file."""
    try:
        mode = os.stat(path.parent).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _refused(path, exc, "use the folder of") from None
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise OAuthError(
            f"the folder of {shown(path)} can be written by other users (mode "
            f"{stat.filemode(mode)}), who could replace the sign-in. Run `chmod go-w "
            f"{path.parent}` (or give MAILER_TOKEN_FILE a folder of its own), then try again"
        )


def _check_opened(path: Path, fd: int) -> os.stat_result:
    """The opened file is a regular file of this user that nobody else may read or change."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise OAuthError(f"{shown(path)} is not a regular file; point it at a file")
    if st.st_uid != os.geteuid():
        raise OAuthError(
            f"{shown(path)} belongs to {_user(st.st_uid)}, not to {_user(os.geteuid())} "
            "that mailer runs as. Run mailer as the user who signed in, or sign in as this "
            "user with MAILER_TOKEN_FILE naming a file of its own"
        )
    if st.st_mode & _OTHERS:
        raise OAuthError(
            f"{shown(path)} can be read or changed by other users (mode "
            f"{stat.filemode(st.st_mode)}), and it holds a refresh token that signs in as the "
            f"mailbox. Run `chmod 600 {path}` as the user mailer runs as, then try again"
        )
    return st


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the token file's advisory lock, `<file>.lock` (never through a symbolic link)."""
    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise OAuthError(
            f"cannot make the folder of {shown(path)}: {exc.strerror}; make it, belonging to "
            "the user mailer runs as"
        ) from None
    _check_folder(path)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | _OPEN, 0o600)
    except OSError as exc:
        raise _refused(path, exc, "lock") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OAuthError(f"{shown(path)}: {lock.name} is not a regular file; remove it")
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and with it the lock


def read_with_mode(path: Path) -> tuple[dict[str, Any], int]:
    """The file's sections and its mode (({}, 0): there is none), after the checks above."""
    _check_folder(path)
    try:  # O_NONBLOCK: a FIFO put there must not hang the open (refused below)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _OPEN)
    except FileNotFoundError:
        return {}, 0
    except OSError as exc:
        raise _refused(path, exc, "read") from None
    with os.fdopen(fd, "rb") as opened:
        mode = _check_opened(path, fd).st_mode
        try:
            sections = json.loads(opened.read())
        except OSError as exc:
            raise _refused(path, exc, "read") from None
        except ValueError:
            raise not_ours(path, "not JSON") from None
    if not isinstance(sections, dict):
        raise not_ours(path, "not a JSON object")
    return sections, mode


def read(path: Path) -> dict[str, Any]:
    """The file's sections ({} if there is none)."""
    return read_with_mode(path)[0]


def write(path: Path, sections: dict[str, Any]) -> None:
    """Replace the file with `sections` atomically, mode 0600 from the first byte; no
    sections left: the file is removed."""
    if not sections:
        path.unlink(missing_ok=True)
        return
    made: str | None = None
    try:  # mkstemp: O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600, a name nobody can guess
        fd, made = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(sections, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(made, path)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(folder)  # the rename itself outlives a crash
        finally:
            os.close(folder)
    except OSError as exc:
        if made is not None:
            Path(made).unlink(missing_ok=True)
        raise OAuthError(f"cannot write {shown(path)}: {exc.strerror}") from None
