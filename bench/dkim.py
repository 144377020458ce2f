"""DKIM benchmark: `python -m bench.dkim [--messages 300]`.

What signing costs per message: the shipped invitation composed for one office, without a
signer and with one (rsa-sha256 with a 2048-bit key, and ed25519-sha256), measured in
turns in one run (CPU time, best of several rounds, so a busy shared machine counts less).
Prints µs per message for each, the cost of signing and the ratio to composing alone.
Keys are made for the run (by `cryptography`, installed with the test extras).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailer.campaign import load_campaign
from mailer.compose import Composer, OutgoingMail
from mailer.delivery.dkim import DkimSettings, DkimSigner
from mailer.invitees.importing import InviteeRecord
from mailer.settings import Secret

ROOT = Path(__file__).resolve().parent.parent
OFFICE = InviteeRecord(
    "TH-50-agri",
    "สำนักงานเกษตรจังหวัดเชียงใหม่",
    "เรียน เกษตรจังหวัดเชียงใหม่",
    ("saraban.th50@agri.example",),
)
NOW = datetime(2016, 11, 1, 2, 0, tzinfo=UTC)


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _signer(folder: Path, algorithm: str, sender: str) -> DkimSigner:
    if algorithm == "ed25519-sha256":
        text = _pem(ed25519.Ed25519PrivateKey.generate())
    else:
        text = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    path = folder / f"{algorithm}.pem"
    path.write_text(text)
    path.chmod(0o600)
    settings = DkimSettings("bench", path, Secret(text), "", algorithm)  # type: ignore[arg-type]
    return DkimSigner(settings, sender)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.chdir(ROOT)
    campaign = load_campaign(Path("schedules/egov-seminar-2559.toml"))
    with tempfile.TemporaryDirectory() as folder:
        composers = {"compose only": Composer(campaign, Path("templates"))}
        for algorithm in ("rsa-sha256", "ed25519-sha256"):
            signer = _signer(Path(folder), algorithm, campaign.sender.email)
            composers[f"+ {algorithm}"] = Composer(campaign, Path("templates"), signer)
    mail = OutgoingMail(OFFICE, "invitation", "<bench@ega.or.th>", 0)
    size = len(composers["compose only"].compose(mail, NOW).data)
    best = dict.fromkeys(composers, float("inf"))
    for _ in range(args.rounds):
        for name, composer in composers.items():  # in turns: the same load on each
            seconds = timeit.timeit(
                lambda c=composer: c.compose(mail, NOW),
                timer=time.process_time,
                number=args.messages,
            )
            best[name] = min(best[name], seconds / args.messages * 1e6)
    base = best["compose only"]
    print(f"invitation of {size:,} bytes; best of {args.rounds} × {args.messages} (CPU time)")
    print(f"{'':22} {'µs/message':>11} {'signing µs':>11} {'× compose':>10}")
    for name, micros in best.items():
        print(f"{name:22} {micros:11.0f} {micros - base:11.0f} {micros / base:10.2f}")


if __name__ == "__main__":
    main()
