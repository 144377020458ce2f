"""DKIM signatures (RFC 6376, RFC 8463) on every outgoing message, made with dkimpy.

`DkimSigner.sign` puts a `DKIM-Signature:` header in front of a composed message:
relaxed/relaxed canonicalization, rsa-sha256 (or ed25519-sha256), the headers of
`SIGNED_HEADERS` each signed once more than it occurs, so a receiver sees a header added
after signing (a second From, a Cc) as a broken signature, and `t=` the time of signing
(dkimpy reads the system clock). The composer calls it last (`Composer(signer=…)`), so
every kind of message is signed the same way.

The settings are read here too (`dkim_settings`, called by `mailer.settings`): the private
key is read once, at start (`read_private_key`: a file only its owner may read), and held
as a `Secret` that never shows itself; a key dkimpy cannot use is named by its file, never
quoted. dkimpy is imported only when a message is signed or verified.
"""

from __future__ import annotations

import base64
import binascii
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mailer.errors import MailerError, cut
from mailer.hosts import host_problem
from mailer.values import Secret, Values

DkimAlgorithm = Literal["rsa-sha256", "ed25519-sha256"]
ALGORITHMS: tuple[DkimAlgorithm, ...] = ("rsa-sha256", "ed25519-sha256")

# The headers a receiver shows or acts on, and the MIME headers that say how to read the
# body. Bcc, Received and Return-Path are never signed (RFC 6376 §5.4).
SIGNED_HEADERS = (
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Language",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
)
_SIGNED_LOWER = tuple(name.lower() for name in SIGNED_HEADERS)
_HEADER_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)
_PEM = re.compile(
    r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----\s*(.+?)\s*-----END \1PRIVATE KEY-----", re.S
)
# PKCS #8 (RFC 8410) around an Ed25519 seed: `openssl genpkey -algorithm ed25519`.
_ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")
_RSA_OID = bytes.fromhex("2a864886f70d010101")  # rsaEncryption, 1.2.840.113549.1.1.1

MIN_RSA_BITS = 1024  # RFC 8301: verifiers must not accept less

Lookup = Callable[[str], str | None]
"""The TXT record at a DNS name (its strings joined), or None when there is none."""


@dataclass(frozen=True)
class DkimSettings:
    """Signing: set when DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE are; `key` is the file's
    text, read once."""

    selector: str
    key_file: Path
    key: Secret
    domain: str = ""  # the d= domain (DKIM_DOMAIN); empty: the sender's
    algorithm: DkimAlgorithm = "rsa-sha256"


_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_BOTH = "(e.g. DKIM_SELECTOR=mailer2568 and DKIM_PRIVATE_KEY_FILE=/etc/mailer/dkim.pem)"


def dkim_settings(v: Values) -> DkimSettings | None:
    """The DKIM_ settings; None (no signing) unless DKIM_SELECTOR and
    DKIM_PRIVATE_KEY_FILE are both set. Each wrong value is added to `v.problems`."""
    selector = v.text("DKIM_SELECTOR", "")
    key_file = v.text("DKIM_PRIVATE_KEY_FILE", "")
    if not selector or not key_file:
        if selector or key_file:
            given, missing = ("DKIM_SELECTOR", "DKIM_PRIVATE_KEY_FILE")[:: 1 if selector else -1]
            v.problems.append(f"{given} is set but {missing} is empty; set both {_BOTH}")
        elif v.text("DKIM_DOMAIN", "") or v.text("DKIM_ALGORITHM", ""):
            v.problems.append(
                "DKIM_DOMAIN or DKIM_ALGORITHM is set, but messages are signed only when "
                f"DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE are too {_BOTH}"
            )
        return None
    if not all(_SELECTOR.fullmatch(label) for label in selector.split(".")):
        v.problems.append(
            f"DKIM_SELECTOR={cut(selector)!r} is not a DNS name (letters, digits and "
            "hyphens); e.g. DKIM_SELECTOR=mailer2568"
        )

    algorithm = _algorithm(v)
    text, problem = read_private_key("DKIM_PRIVATE_KEY_FILE", Path(key_file), algorithm)
    if problem:
        v.problems.append(problem)
    return DkimSettings(selector, Path(key_file), Secret(text), _domain(v), algorithm)


def _algorithm(v: Values) -> DkimAlgorithm:
    raw = v.text("DKIM_ALGORITHM", "rsa-sha256").lower()
    for algorithm in ALGORITHMS:
        if raw == algorithm:
            return algorithm
    v.problems.append(
        f"DKIM_ALGORITHM={cut(raw)!r} must be rsa-sha256 or ed25519-sha256; e.g. "
        "DKIM_ALGORITHM=rsa-sha256 (what every receiver checks)"
    )
    return "rsa-sha256"


def _domain(v: Values) -> str:
    raw = v.text("DKIM_DOMAIN", "")
    if not raw:
        return ""
    domain, problem = host_problem("DKIM_DOMAIN", raw, "ega.or.th")
    domain = domain.lower().removesuffix(".")
    if problem is None and ("." not in domain or domain.replace(".", "").isdigit()):
        problem = f"DKIM_DOMAIN={cut(raw)!r} is not a mail domain; e.g. DKIM_DOMAIN=ega.or.th"
    if problem:
        v.problems.append(problem)
    return domain


def read_private_key(name: str, path: Path, algorithm: str) -> tuple[str, str | None]:
    """(the key file's text, what is wrong with it or None). A key the group or others
    may read is refused before it is read; the text is checked for the key's form only
    (`DkimSigner` parses it), and no problem quotes it."""
    where = f"{name}={str(path)!r}"
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return "", f"{where} cannot be read ({exc.strerror}); give the private key's file"
    if not stat.S_ISREG(mode):
        return "", f"{where} is not a file; give the private key's PEM file"
    if mode & 0o077:
        return "", (
            f"{where} may be read or changed by others than its owner (mode "
            f"{stat.S_IMODE(mode):o}); a private key must be the owner's alone: run "
            f"`chmod 600 {path}`"
        )
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return "", f"{where} cannot be read as a PEM file; check its owner and contents"
    if _key_bytes(text, algorithm) is None:
        shape = (
            "a PEM RSA private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)"
            if algorithm == "rsa-sha256"
            else "an Ed25519 private key (PEM from `openssl genpkey -algorithm ed25519`, or "
            "the base64 seed `dknewkey --ktype ed25519` writes)"
        )
        return "", f"{where} is not {shape} (DKIM_ALGORITHM={algorithm})"
    return text, None


def _key_bytes(text: str, algorithm: str) -> bytes | None:
    """The key as dkimpy takes it: the PEM for RSA (PKCS #1 or #8), the base64 seed for
    Ed25519 (given as PKCS #8 PEM or as that seed); None when the text is neither."""
    found = _PEM.search(text)
    try:
        if found is None:
            seed = base64.b64decode("".join(text.split()), validate=True)
            ok = algorithm == "ed25519-sha256" and len(seed) == 32
            return base64.b64encode(seed) if ok else None
        der = base64.b64decode("".join(found[2].split()), validate=True)
    except binascii.Error:
        return None
    kind = found[1].strip()  # "" (PKCS #8), RSA; not ENCRYPTED, OPENSSH, EC
    if algorithm == "ed25519-sha256":
        ok = kind == "" and len(der) == 48 and der.startswith(_ED25519_PKCS8)
        return base64.b64encode(der[16:]) if ok else None
    rsa = kind == "RSA" or (kind == "" and _RSA_OID in der[:32])
    return found[0].replace("\r", "").encode("ascii") if rsa and der[:1] == b"\x30" else None


class DkimSigner:
    """Signs for `d=` `settings.domain`, or the sender's domain when that is empty."""

    def __init__(self, settings: DkimSettings, sender: str) -> None:
        self.selector = settings.selector
        self.domain = (settings.domain or sender.rpartition("@")[2]).lower()
        self.algorithm = settings.algorithm
        self.key_file = settings.key_file
        key = _key_bytes(settings.key.value, settings.algorithm)
        if key is None:  # the settings checked it; a Settings built by hand may not have
            raise self._unusable()
        self._key = key
        self.sign(b"From: probe@invalid\r\nSubject: probe\r\n\r\nprobe\r\n")  # fails now
        if self.algorithm == "rsa-sha256" and self.key_bits() < MIN_RSA_BITS:
            raise MailerError(
                f"DKIM_PRIVATE_KEY_FILE={str(self.key_file)!r} is a {self.key_bits()}-bit RSA "
                f"key; receivers ignore signatures by keys under {MIN_RSA_BITS} bits. Make a "
                '2048-bit key as README "Deliverability" shows'
            )

    @property
    def record_name(self) -> str:
        """Where the public key is published."""
        return f"{self.selector}._domainkey.{self.domain}"

    def _unusable(self) -> MailerError:
        return MailerError(
            f"DKIM_PRIVATE_KEY_FILE={str(self.key_file)!r} holds no private key dkimpy can "
            f"sign with (DKIM_ALGORITHM={self.algorithm}); make a new one as README "
            '"Deliverability" shows'
        )

    def sign(self, data: bytes) -> bytes:
        """`data` with its DKIM-Signature header in front."""
        import dkim

        try:
            header = dkim.sign(
                data,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self._key,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=self.algorithm.encode("ascii"),
                include_headers=headers_to_sign(data),
                linesep=b"\r\n",
            )
        except dkim.DKIMException:  # its text may describe the key: never shown
            raise self._unusable() from None
        assert isinstance(header, bytes)
        return header + data

    def public_key(self) -> str:
        """The `p=` value of the DNS record: the key's public half, base64."""
        if self.algorithm == "ed25519-sha256":
            import nacl.encoding
            import nacl.signing

            seed = nacl.signing.SigningKey(self._key, encoder=nacl.encoding.Base64Encoder)
            return seed.verify_key.encode(encoder=nacl.encoding.Base64Encoder).decode("ascii")
        from dkim.crypto import parse_pem_private_key

        private = parse_pem_private_key(self._key)
        return base64.b64encode(
            rsa_public_der(private["modulus"], private["publicExponent"])
        ).decode("ascii")

    def key_bits(self) -> int:
        if self.algorithm == "ed25519-sha256":
            return 256
        from dkim.crypto import parse_pem_private_key

        return int(parse_pem_private_key(self._key)["modulus"].bit_length())

    def record(self) -> str:
        """The TXT record to publish at `record_name`."""
        kind = "ed25519" if self.algorithm == "ed25519-sha256" else "rsa"
        return f"v=DKIM1; k={kind}; p={self.public_key()}"


def headers_to_sign(data: bytes) -> list[bytes]:
    """Each header of `SIGNED_HEADERS` as often as the message has it, and once more: the
    extra entry signs "no further such header" (RFC 6376 §8.15)."""
    block = data.split(b"\r\n\r\n", 1)[0]
    present = [name.lower() for name in _HEADER_NAME.findall(block)]
    signed = []
    for name in _SIGNED_LOWER:
        signed += [name.encode("ascii")] * (present.count(name.encode("ascii")) + 1)
    return signed


def verifies(data: bytes, lookup: Lookup) -> bool:
    """Whether the message's first DKIM signature verifies against the key `lookup` finds."""
    import dkim

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        found = lookup(name.decode("ascii").rstrip("."))
        return found.encode("ascii", "replace") if found is not None else None

    return bool(dkim.verify(data, dnsfunc=dnsfunc))


def rsa_public_der(modulus: int, exponent: int) -> bytes:
    """The SubjectPublicKeyInfo of an RSA key, DER (what `p=` carries, base64)."""

    def tlv(tag: int, body: bytes) -> bytes:
        size = len(body)
        if size < 0x80:
            return bytes([tag, size]) + body
        length = size.to_bytes((size.bit_length() + 7) // 8, "big")
        return bytes([tag, 0x80 | len(length)]) + length + body

    def integer(n: int) -> bytes:
        return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))

    algorithm = tlv(0x30, tlv(0x06, _RSA_OID) + tlv(0x05, b""))
    key = tlv(0x30, integer(modulus) + integer(exponent))
    return tlv(0x30, algorithm + tlv(0x03, b"\x00" + key))
