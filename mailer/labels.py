"""The words the coordinator reads: agencies, attendance and delivery states in Thai, the
marks of the status matrix, the kinds of export. Plain values, importing only the words of
attendance (`mailer.replies.statuses`, itself import-light), so the command line can show them
in its help without loading the rest of mailer."""

from mailer.replies.statuses import Attendance

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
    Attendance.no_reply: "ยังไม่ตอบ",
    Attendance.accepted: "เข้าร่วม",
    Attendance.tentative: "ยังไม่แน่นอน",
    Attendance.declined: "ไม่เข้าร่วม",
    Attendance.representative: "ส่งผู้แทน",
    Attendance.bounced: "อีเมลตีกลับ",
    Attendance.needs_review: "รอตรวจสอบ",
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
    Attendance.accepted: ("✓", "green"),
    Attendance.representative: ("◐", "cyan"),
    Attendance.tentative: ("?", "yellow"),
    Attendance.declined: ("✗", "red"),
    Attendance.bounced: ("!", "magenta"),
    Attendance.needs_review: ("‼", "bright_red"),
    Attendance.no_reply: ("·", "bright_black"),
}
