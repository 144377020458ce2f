"""`mailer check --deliverability`: what receivers will make of our messages, asked of the
DNS and the relay before a batch goes out (`report.check_deliverability`). Each check gives
a `findings.Finding`: pass, warn or fail, with what to change.

`resolver` is the DNS (the system's, or MAILER_DNS_SERVER); `spf` evaluates SPF;
`domains` looks at the sender's and the coordinator's domains (SPF, DKIM key, DMARC, MX);
`relay` at SMTP_HOST (its addresses, TLS, PTR).
"""
