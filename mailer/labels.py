"""The words the coordinator reads: agencies, attendance and delivery states in Thai, the
marks of the status matrix, the kinds of export. Plain values and no imports, so the command
line can show them in its help without loading the rest of mailer."""

AGENCY_ORDER = ("prov", "agri", "rd", "ind", "mots", "sso", "dbd")
AGENCY_LABELS = {
    "prov": "จังหวัด",
    "agri": "เกษตร",
    "rd": "สรรพากร",
    "ind": "อุตสาหกรรม",
    "mots": "ท่องเที่ยวฯ",
    "sso": "ประกันสังคม",
    "dbd": "พัฒนาธุรกิจฯ",
}
AGENCY_SHORT = {  # matrix column headings
    "prov": "สนจ.",
    "agri": "กษจ.",
    "rd": "สรพ.",
    "ind": "สอจ.",
    "mots": "สกจ.",
    "sso": "สปจ.",
    "dbd": "พค.",
}
ATTENDANCE_TH = {
    "no_reply": "ยังไม่ตอบ",
    "accepted": "เข้าร่วม",
    "tentative": "ยังไม่แน่นอน",
    "declined": "ไม่เข้าร่วม",
    "representative": "ส่งผู้แทน",
    "bounced": "อีเมลตีกลับ",
    "needs_review": "รอตรวจสอบ",
}
DELIVERY_TH = {
    "not_enqueued": "ยังไม่ส่ง",
    "queued": "รอส่ง",
    "sending": "กำลังส่ง",
    "sent": "ส่งแล้ว",
    "retry_wait": "รอส่งซ้ำ",
    "failed": "ส่งไม่สำเร็จ",
    "uncertain": "ไม่แน่ใจว่าส่งถึง",
}
KINDS = ("all", "call-sheet", "attendees")

MARKS = {  # the matrix: one coloured mark per office (Rich styles)
    "accepted": ("✓", "green"),
    "representative": ("◐", "cyan"),
    "tentative": ("?", "yellow"),
    "declined": ("✗", "red"),
    "bounced": ("!", "magenta"),
    "needs_review": ("‼", "bright_red"),
    "no_reply": ("·", "bright_black"),
}
