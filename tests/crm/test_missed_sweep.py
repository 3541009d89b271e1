"""The missed-enrichment sweep reads every active connection's missing outbox rows in one query and writes them
in one insert (it made ~4 queries per interaction per connection before), and never adds a row twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import CrmConnection, CrmDelivery
from crm.services import crm_deliveries_enqueue, crm_enqueue_missed
from tests.crm.records import connect, enriched, patient

pytestmark = pytest.mark.django_db


def test_one_read_and_one_insert_for_every_connection_and_nothing_twice(
    tenant, other_tenant, django_assert_max_num_queries
):
    now = timezone.now()
    mine_hs, mine_zoho = connect(tenant, "hubspot"), connect(tenant, "zoho")
    theirs = connect(other_tenant, "hubspot", access_token="at-2")
    CrmConnection.objects.update(created_at=now - timedelta(days=1))
    CrmConnection.objects.filter(pk=mine_zoho.pk).update(created_at=now - timedelta(minutes=40))
    ours = [enriched(patient(tenant, phone=f"+1305555014{n}", email=""), minutes_ago=60 - 10 * n) for n in range(4)]
    crm_deliveries_enqueue(interaction_id=ours[3].pk)  # its receiver ran: both connections have a row
    theirs_rows = [enriched(patient(other_tenant, phone=f"+4477009001{n}", email=""), minutes_ago=20) for n in range(2)]
    disabled = connect(other_tenant, "zoho", status="disabled")

    with django_assert_max_num_queries(2):
        added = crm_enqueue_missed(now=now)

    # hubspot: ours[0..2]; zoho (made 40 min ago): only rows enriched since (ours[2], enriched 35 min ago);
    # theirs: both; the disabled connection: none
    assert added == 3 + 1 + 2
    pairs = set(CrmDelivery.objects.values_list("connection_id", "interaction_id"))
    assert pairs == {
        *((mine_hs.pk, i.pk) for i in ours),
        (mine_zoho.pk, ours[2].pk),
        (mine_zoho.pk, ours[3].pk),
        *((theirs.pk, i.pk) for i in theirs_rows),
    }
    assert not CrmDelivery.objects.filter(connection=disabled).exists()
    assert set(CrmDelivery.objects.values_list("status", flat=True)) == {"pending"}
    assert crm_enqueue_missed(now=now + timedelta(seconds=30)) == 0
