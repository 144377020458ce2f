"""The invitee's page, served by `mailer web` (Starlette + uvicorn, the project's sandboxed
Jinja2): each office opens its own signed link (`tokens`, `links`), sees the event as its
current version tells it and answers in two clicks (`pages`, `app`); a GET only shows and
is recorded as "link opened" (`store`); a POST needs the form's CSRF token and is rate
limited (`guard`), and records the answer through the attendance rules
(`mailer.replies.online`)."""
