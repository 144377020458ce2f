"""The words of attendance: what an office's answer can be. A module of its own, with no
imports, so the command line can name them in its help without loading reply tracking."""

DECISIVE = ("accepted", "declined", "tentative", "representative", "bounced")
STATUSES = ("no_reply", *DECISIVE, "needs_review")  # every attendance an office can have
MARKABLE = ("accepted", "declined", "tentative", "representative")  # what `mark` records
