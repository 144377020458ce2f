"""`mailer check --deliverability`: every check, in the order a receiver meets them.

The relay's addresses, SPF of the envelope domain for each, the DKIM key and a signed
invitation verified against it, DMARC of the From domain and its alignment, MX of the
coordinator's domain (replies) and of the sender's (bounces), the relay's TLS, PTR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr

from mailer.compose import Composer, OutgoingMail
from mailer.deliverability.dmarc import Alignment, dmarc_finding
from mailer.deliverability.domains import dkim_finding, mx_finding, spf_findings
from mailer.deliverability.findings import Finding
from mailer.deliverability.relay import ptr_findings, relay_addresses, tls_finding
from mailer.deliverability.resolver import Dns
from mailer.delivery.dkim import DkimSigner
from mailer.invitees.addresses import ascii_address
from mailer.invitees.records import InviteeRecord
from mailer.settings import SmtpSettings

SAMPLE = InviteeRecord(  # the office a sample invitation is composed for (never sent)
    invitee_id="TH-00-check",
    organisation="สำนักงานตัวอย่าง",
    salutation="เรียน ผู้อำนวยการสำนักงานตัวอย่าง",
    email=("sample@example.invalid",),
    province="ตัวอย่าง",
    province_code="TH-00",
    agency="prov",
)


@dataclass
class DeliverabilityReport:
    sender_domain: str
    coordinator_domain: str
    dns: str  # which DNS was asked
    findings: list[Finding] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(1 for finding in self.findings if finding.verdict == verdict)

    @property
    def ok(self) -> bool:
        return self.count("fail") == 0

    def counts(self) -> str:
        return (
            f"{self.count('pass')} passed, {self.count('warn')} warning(s), "
            f"{self.count('fail')} failed"
        )

    def to_json(self) -> dict[str, object]:
        """For `check --deliverability --json`: the findings in the order printed."""
        return {
            "sender_domain": self.sender_domain,
            "coordinator_domain": self.coordinator_domain,
            "dns": self.dns,
            "ok": self.ok,
            "counts": {verdict: self.count(verdict) for verdict in ("pass", "warn", "fail")},
            "checks": [finding.to_json() for finding in self.findings],
        }


def _domain(address: str) -> str:
    return ascii_address(address).rpartition("@")[2].lower()


def check_deliverability(
    composer: Composer,
    smtp: SmtpSettings,
    dns: Dns,
    signer: DkimSigner | None,
    now: datetime,
) -> DeliverabilityReport:
    """Ask DNS and the relay what receivers will; `signer` is the one `composer` signs
    with (its key and selector are looked up), `now` dates the sample and the TLS check."""
    campaign = composer.campaign
    sample_id = f"<deliverability-check@{campaign.uid_domain}>"
    sample = composer.compose(
        OutgoingMail(SAMPLE, campaign.invitation_rule.template, sample_id, 0), now
    )
    from_domain = _domain(parseaddr(_header(sample.data, "From"))[1])
    envelope = ascii_address(sample.envelope_from)
    report = DeliverabilityReport(from_domain, _domain(campaign.coordinator.email), dns.where)
    addresses, relay = relay_addresses(smtp)
    spf, spf_pass = spf_findings(dns, addresses, envelope)
    dkim, dkim_ok = dkim_finding(dns, signer, sample.data, from_domain)
    seen = Alignment(
        from_domain=from_domain,
        envelope_domain=_domain(envelope),
        dkim_domain=signer.domain if signer is not None else None,
        dkim_verified=dkim_ok,
        spf_pass=spf_pass,
    )
    report.findings += [relay, *spf, dkim, dmarc_finding(dns, seen)]
    report.findings.append(
        mx_finding(dns, report.coordinator_domain, "the coordinator's: replies", needed=True)
    )
    if _domain(envelope) != report.coordinator_domain:
        report.findings.append(
            mx_finding(dns, _domain(envelope), "the sender's: bounces", needed=False)
        )
    report.findings.append(tls_finding(smtp, now))
    report.findings += ptr_findings(dns, addresses)
    return report


def _header(data: bytes, name: str) -> str:
    """The first `name:` header of a composed message (unfolded, as ASCII)."""
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    headers = BytesHeaderParser(policy=compat32).parsebytes(data)
    return str(headers.get(name, ""))
