"""The record map (our id → the CRM's id) and the contact every synced record hangs on.

Shared by activities (:mod:`crm.services`) and meetings (:mod:`crm.meetings`). A map row is written in its own
commit as soon as the CRM answers, so a later failure in the same delivery never forgets a created record and
a retry updates it instead of creating a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import IntegrityError, transaction

from crm.clients.base import CrmClient, CrmRejected
from crm.models import CrmConnection, CrmRecordMap
from crm.payload import contact_data, surviving_customer
from identity.models import Customer

logger = logging.getLogger(__name__)


def map_get(connection: CrmConnection, kind: str, local_id) -> CrmRecordMap | None:
    """The CRM record ``local_id`` (a UUID) of ``kind`` became for this tenant and provider, or None."""
    return CrmRecordMap.objects.filter(
        tenant_id=connection.tenant_id, provider=connection.provider, kind=kind, local_id=local_id
    ).first()


def map_put(connection: CrmConnection, kind: str, local_id, remote_type: str, remote_id: str) -> None:
    """Remember a CRM record (its own commit: a later failure must not forget a created record)."""
    try:
        with transaction.atomic():
            CrmRecordMap.objects.update_or_create(
                tenant_id=connection.tenant_id,
                provider=connection.provider,
                kind=kind,
                local_id=local_id,
                defaults={"connection": connection, "remote_type": remote_type, "remote_id": remote_id},
            )
    except IntegrityError:  # a concurrent worker mapped it first; keep theirs
        logger.warning("crm map %s %s for connection %s written concurrently", kind, local_id, connection.pk)


def mapped_upsert(
    connection: CrmConnection,
    kind: str,
    local_id,
    *,
    update: Callable[[str, str], None],
    create: Callable[[], tuple[str, str]],
    fence: Callable,
) -> None:
    """Keep one CRM record per ``(kind, local_id)``: ``update(remote_type, remote_id)`` the mapped one; when none
    is mapped, or the CRM answers 404 (deleted there; the map row is dropped), ``fence()`` (raises once the
    delivery's lease was taken over), ``create()`` → ``(remote_type, remote_id)`` and map it. Raises the
    client's :class:`crm.clients.base.CrmError` subclasses."""
    mapped = map_get(connection, kind, local_id)
    if mapped is not None:
        try:
            update(mapped.remote_type, mapped.remote_id)
            return
        except CrmRejected as exc:
            if exc.status_code != 404:
                raise
            mapped.delete()
    fence()
    remote_type, remote_id = create()
    map_put(connection, kind, local_id, remote_type, remote_id)


def contact_upsert(client: CrmClient, connection: CrmConnection, customer: Customer, *, fence: Callable) -> str:
    """The CRM contact id of ``customer`` (a merged tombstone's survivor): the mapped contact, refreshed; else
    the CRM's match by E.164 phone / email, refreshed; else a new contact (``fence()`` first — it raises when
    the delivery's lease was taken over). Raises the client's :class:`crm.clients.base.CrmError` subclasses."""
    customer = surviving_customer(customer)
    contact = contact_data(customer)
    mapped = map_get(connection, CrmRecordMap.Kind.CUSTOMER, customer.pk)
    if mapped is not None:
        try:
            client.update_contact(mapped.remote_id, contact)
            return mapped.remote_id
        except CrmRejected as exc:
            if exc.status_code != 404:
                raise
            mapped.delete()  # deleted in the CRM: match or create again
    contact_id = client.find_contact(contact)
    if contact_id is not None:
        client.update_contact(contact_id, contact)
    else:
        fence()
        contact_id = client.create_contact(contact)
    map_put(connection, CrmRecordMap.Kind.CUSTOMER, customer.pk, "contact", contact_id)
    return contact_id
