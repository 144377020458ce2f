"""Pure message building: templates → letter; event → iCalendar; both → MIME bytes.

Nothing here touches the database, the network or the clock: values in, values out.
`Composer` holds what is built once per campaign (compiled templates, the VTIMEZONE).
"""

from mailer.compose.composer import Attachment, ComposedMessage, Composer, OutgoingMail
from mailer.compose.letters import Letter, LetterRenderer

__all__ = ["Attachment", "ComposedMessage", "Composer", "Letter", "LetterRenderer", "OutgoingMail"]
