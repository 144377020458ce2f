"""What is written by hand for speed, and what it buys: `python -m bench.handwritten`.

Each piece of mailer written by hand instead of with the library it stands for is timed
beside that library, in the same run and in turns, and the ratio printed (absolute figures
move ×2–3 between machines here: read the ratios). The library baselines live in this
package, once; tests/test_handwritten.py checks that each hand-written piece gives what its
baseline gives:
  1. the MIME writer (`mailer.compose.mime`) against `email.message.EmailMessage` (`mime`);
  2. SQLite's writers serialised by a file lock (`mailer.db._WriterLock`) against
     `BEGIN IMMEDIATE` and SQLite's busy handler alone (`database`);
  3. the ledger's two hot statements compiled once and run on the driver's cursor
     (`mailer.db.Prepared`) against the same statements in SQLAlchemy Core (`database`);
  4. SMTP PIPELINING by hand (`SmtpTransport.send`) against `smtplib.SMTP.sendmail`,
     directly and through a loopback proxy that delays every packet (`smtp`);
  5. `os._exit` at the end of a `--workers` helper against a normal exit (`helper`).
"""
