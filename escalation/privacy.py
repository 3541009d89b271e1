"""escalation's part of erase (see :mod:`identity.privacy`): a patient under an open incident is not erased.

Incidents hold no patient text (``reason`` is a non-PHI label), so there is nothing else to erase or export.
"""

from __future__ import annotations

from escalation.models import Incident
from identity.models import Customer
from identity.privacy import Export, PrivacyHandler


def refuse(customer: Customer) -> str | None:
    if Incident.objects.filter(customer=customer, status=Incident.Status.TRIGGERED).exists():
        return "an escalation incident for this patient is still open (acknowledge or resolve it first)"
    return None


HANDLER = PrivacyHandler(
    name="escalation", refuse=refuse, erase=lambda customers: {}, export=lambda customer: Export(data={})
)
