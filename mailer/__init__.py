"""mailer: the seminar invitation and coordination mailer."""

__version__ = "0.1.0"
