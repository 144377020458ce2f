"""Where replies come from: the coordinator's IMAP folder, a local Maildir, an mbox file,
or a folder of `.eml` files.

Each yields (key, raw bytes); the key is stable for the same message in the same source,
so a re-sync stores nothing twice. Nothing in the source is changed, moved or marked.
"""

from __future__ import annotations

import contextlib
import hashlib
import mailbox
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

from imapclient import IMAPClient

from mailer.errors import MailerError
from mailer.oauth import OAuthSettings, token_source
from mailer.settings import ImapSettings


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
    with path.open("rb") as handle:
        head = handle.read(5)
    if head and head != b"From ":
        raise MailerError(f"{path} is not an mbox file (it does not start with a 'From ' line)")
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            try:
                raw = box.get_message(key).as_bytes()  # as stored by earlier syncs: same keys
            except RecursionError:  # nested too deep to parse: kept as it is in the file
                raw = box.get_bytes(key)
            yield f"mbox:{_digest(raw)}", raw
    finally:
        box.close()


def eml_dir(path: Path) -> Iterator[tuple[str, bytes]]:
    if not path.is_dir():
        raise MailerError(f"{path}: no such folder of .eml files")
    files = sorted(path.glob("*.eml"))
    for file in files:  # all checked before the first is read
        if file.is_dir():
            raise MailerError(
                f"{file} is a folder, not a message file; move it out of {path} or rename it"
            )
        if not file.is_file():
            raise MailerError(f"{file} is not a readable file; remove it from {path}")
    for file in files:
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise MailerError(f"cannot read {file}: {exc.strerror or exc}") from exc
        yield f"eml:{file.name}:{_digest(raw)[:16]}", raw


def imap(settings: ImapSettings, highest_uid: Callable[[int], int]) -> Iterator[tuple[str, bytes]]:
    """The coordinator's IMAP folder, read-only (EXAMINE, BODY.PEEK): no flag changes.

    Incremental: only UIDs above the highest one stored for the folder's current
    UIDVALIDITY are fetched, so a re-sync costs one SEARCH. Keys are
    `imap:<uidvalidity>:<uid>`. A generator: nothing is opened until the first read."""
    client, validity = open_folder(settings)
    try:
        since = highest_uid(validity)
        uids = [uid for uid in client.search(["UID", f"{since + 1}:*"]) if uid > since]
        for start in range(0, len(uids), 200):
            batch = uids[start : start + 200]
            for uid, data in sorted(client.fetch(batch, ["BODY.PEEK[]"]).items()):
                yield f"imap:{validity}:{uid}", bytes(data[b"BODY[]"])
    finally:
        close(client)


def open_folder(settings: ImapSettings, timeout: float = 30) -> tuple[IMAPClient, int]:
    """A logged-in connection with the folder selected read-only, and its UIDVALIDITY
    (also the long-lived connection `watch.py` waits on with IDLE). Each failure is a
    `MailerError` that says why and never holds the password; `close` it after."""
    if not settings.host or not settings.username:
        raise MailerError(
            "set IMAP_HOST, IMAP_USERNAME and IMAP_PASSWORD (see .env.example) to read the "
            "coordinator's mailbox, or give --maildir / --mbox / --eml-dir"
        )
    where = f"the IMAP server {settings.host}:{settings.port}"
    client = _logged_in(settings, where, timeout)
    try:
        status = client.select_folder(settings.folder, readonly=True)
    except IMAPClient.Error as exc:
        close(client)
        raise MailerError(
            f"{where} has no folder IMAP_FOLDER={settings.folder!r} ({exc}); check its name"
        ) from exc
    except BaseException:
        close(client)
        raise
    return client, int(status[b"UIDVALIDITY"])


def close(client: IMAPClient) -> None:
    """Log out, or drop the connection if the server is gone."""
    try:
        client.logout()
    except (IMAPClient.Error, OSError):
        with contextlib.suppress(OSError):
            client.shutdown()


def _unverified(where: str, exc: ssl.SSLCertVerificationError) -> MailerError:
    return MailerError(
        f"the TLS certificate of {where} does not verify ({exc.verify_message}); set "
        "IMAP_CA_FILE if it uses a private CA"
    )


def _oauth2_login(client: IMAPClient, username: str, oauth: OAuthSettings) -> None:
    """AUTHENTICATE XOAUTH2; refused once, tried again with a token fetched again."""
    source = token_source(oauth)
    try:
        client.oauth2_login(username, source.token())
    except IMAPClient.Error:
        client.oauth2_login(username, source.token(fresh=True))


def _logged_in(settings: ImapSettings, where: str, timeout: float) -> IMAPClient:
    """A client connected (TLS or STARTTLS) and logged in, or a `MailerError` saying why not."""
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    try:
        client = IMAPClient(
            settings.host, port=settings.port, ssl=settings.security == "ssl",
            ssl_context=context, timeout=timeout,
        )  # fmt: skip
    except ssl.SSLCertVerificationError as exc:
        raise _unverified(where, exc) from exc
    except OSError as exc:
        raise MailerError(
            f"cannot reach {where}: {exc.strerror or exc}; check IMAP_HOST and IMAP_PORT"
        ) from exc
    try:
        if settings.security == "starttls":
            client.starttls(context)
        if settings.oauth is not None:
            _oauth2_login(client, settings.username, settings.oauth)
        elif f"{settings.username}{settings.password.value}".isascii():
            client.login(settings.username, settings.password.value)
        else:  # LOGIN's arguments are ASCII only; AUTHENTICATE PLAIN carries UTF-8 (RFC 4616)
            client.plain_login(settings.username, settings.password.value)
    except ssl.SSLCertVerificationError as exc:
        with contextlib.suppress(OSError):
            client.shutdown()
        raise _unverified(where, exc) from exc
    except MailerError:  # no token (mailer.oauth says why)
        with contextlib.suppress(OSError):
            client.shutdown()
        raise
    except (IMAPClient.Error, OSError) as exc:
        with contextlib.suppress(OSError):
            client.shutdown()
        raise MailerError(
            f"{where} refused the login of IMAP_USERNAME={settings.username!r}: {exc}"
        ) from exc
    return client
