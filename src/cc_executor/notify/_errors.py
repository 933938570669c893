"""Every error the notify package raises, in one hierarchy."""

from __future__ import annotations


class NotifyError(Exception):
    """Base of every error raised by :mod:`cc_executor.notify`. The message is a sentence
    meant for the user; it may quote untrusted text, so display it neutralised."""


class GitStateError(NotifyError):
    """Sending ``issue_fixed`` was refused because of the sender's repository: not a git
    repository, no commit yet, uncommitted changes to tracked files, or HEAD not pushed
    to any remote-tracking branch while a remote exists."""


class RunEvidenceError(NotifyError):
    """``from_run`` names a run that is missing from the history, did not pass, or whose
    output files no longer match their receipts."""


class InvalidMessage(NotifyError):
    """A message does not match the notification schema (raised before anything is
    written; received files that do not match are reported, not raised)."""


class DeliveryError(NotifyError):
    """The message could not be written: the target is not a directory, its inbox would
    resolve outside it (a symbolic link), or the file system refused."""


class EntryNotFound(NotifyError):
    """No inbox entry has this id, or a prefix matches several."""
