"""Every error the notify package raises, in one hierarchy under :class:`NotifyError`
(defined with every other error in :mod:`cc_executor._errors`)."""

from cc_executor._errors import DeliveryError as DeliveryError
from cc_executor._errors import EntryNotFound as EntryNotFound
from cc_executor._errors import GitStateError as GitStateError
from cc_executor._errors import InvalidMessage as InvalidMessage
from cc_executor._errors import NotifyError as NotifyError
from cc_executor._errors import RunEvidenceError as RunEvidenceError
