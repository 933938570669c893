"""Notifications between projects: report an issue, announce a fix, ask, acknowledge.

A message is one JSON file dropped into the receiving project's
``.github/ISSUES/inbox/``, named ``<type>_<sender>_<unix-seconds>_<short-id>.json``,
written atomically and never over another file, and valid against the JSON Schema shipped
in this package (:func:`schema`). Issue files (Markdown with YAML front matter) may also
arrive in ``.github/ISSUES/incoming/``.

Sending (:func:`notify`) takes the commit from git and refuses to announce a fix that is
not committed, or not pushed while a remote exists; test results come from a run of the
history with its sha256 receipts. Receiving (:func:`read_inbox`, :func:`find`,
:func:`acknowledge`, :func:`watch`) treats every file as untrusted input: nothing in it is
executed, imported, evaluated or followed, and each bad file is reported with its reason
without stopping the rest.
"""

# ruff: noqa: E402
# (the extra is checked before the imports that need it)
from cc_executor._extras import require_extra
from cc_executor._lazy import renamed

require_extra("notify", "cc_executor.notify")

from cc_executor.notify._errors import (
    DeliveryError,
    EntryNotFound,
    GitStateError,
    InvalidMessage,
    NotifyError,
    RunEvidenceError,
)
from cc_executor.notify._evidence import EvidenceCheck, check_evidence, run_evidence
from cc_executor.notify._inbox import (
    Acknowledgement,
    Entry,
    Inbox,
    InboxProblem,
    Issue,
    Message,
    acknowledge,
    find,
    load,
    project_root,
    read_inbox,
)
from cc_executor.notify._message import (
    INBOX,
    INCOMING,
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPES,
    PROCESSED,
    Fix,
    build_message,
    is_safe_name,
    project_name,
    schema,
    schema_problems,
    validate,
)
from cc_executor.notify._send import Delivery, deliver, notify, write_new_file
from cc_executor.notify._watch import watch

__all__ = [
    "INBOX",
    "INCOMING",
    "MAX_MESSAGE_BYTES",
    "MESSAGE_TYPES",
    "PROCESSED",
    "Acknowledgement",
    "Delivery",
    "DeliveryError",
    "Entry",
    "EntryNotFound",
    "EvidenceCheck",
    "Fix",
    "GitStateError",
    "Inbox",
    "InboxProblem",
    "InvalidMessage",
    "Issue",
    "Message",
    "NotifyError",
    "RunEvidenceError",
    "acknowledge",
    "build_message",
    "check_evidence",
    "deliver",
    "find",
    "is_safe_name",
    "load",
    "notify",
    "project_name",
    "project_root",
    "read_inbox",
    "run_evidence",
    "schema",
    "schema_problems",
    "validate",
    "watch",
    "write_new_file",
]

__getattr__ = renamed(__name__, {"Problem": "InboxProblem"}, globals())
