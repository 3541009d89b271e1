"""The claim/lease/redrive helpers (identity.leases) on real PostgreSQL rows: an IMAP mailbox's lease columns
and a call log's JSON ``workflow``."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from channels_app.models import EmailMailbox
from conversations.models import Interaction
from identity import leases
from tests.factories import InteractionFactory, TenantFactory

LEASE = timedelta(minutes=5)


@pytest.fixture
def mailbox(db):
    return EmailMailbox.objects.create(tenant=TenantFactory(), address="recepción@clínica-sol.example")


def rows(box):
    return EmailMailbox.objects.filter(pk=box.pk)


def test_a_claim_takes_a_free_row_and_returns_its_token(mailbox):
    now = timezone.now()
    token = leases.claim(rows(mailbox), now=now, lease=LEASE)
    mailbox.refresh_from_db()
    assert token and mailbox.lease_token == token and mailbox.lease_until == now + LEASE
    assert leases.claim(rows(mailbox), now=now + LEASE - timedelta(seconds=1), lease=LEASE) is None


@pytest.mark.django_db(transaction=True)
def test_of_two_concurrent_claims_exactly_one_wins():
    box = EmailMailbox.objects.create(tenant=TenantFactory(), address="frontdesk@dentist-o'brien.example")
    now, start, tokens = timezone.now(), threading.Barrier(2), []

    def claimer():
        try:
            with transaction.atomic():
                start.wait(timeout=10)
                tokens.append(leases.claim(rows(box), now=now, lease=LEASE))
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    won = [t for t in tokens if t]
    assert len(tokens) == 2 and len(won) == 1
    box.refresh_from_db()
    assert box.lease_token == won[0]


def test_an_expired_claim_is_taken_over_and_the_stale_token_cannot_record_or_release(mailbox):
    t0 = timezone.now()
    stale = leases.claim(rows(mailbox), now=t0, lease=LEASE)
    fresh = leases.claim(rows(mailbox), now=t0 + LEASE, lease=LEASE)  # the first holder died: lease over
    assert fresh and fresh != stale
    assert leases.record(rows(mailbox), stale, last_uid=99) is False
    assert leases.release(rows(mailbox), stale) is False
    assert leases.record(rows(mailbox), fresh, last_uid=7) is True
    mailbox.refresh_from_db()
    assert (mailbox.last_uid, mailbox.lease_token) == (7, fresh)
    assert leases.release(rows(mailbox), fresh) is True
    mailbox.refresh_from_db()
    assert (mailbox.lease_until, mailbox.lease_token) == (None, "")


def test_an_attempt_counter_is_a_fencing_token_too(mailbox):
    """Sites whose claim bumps a counter fence on it (``token_field`` names the counter)."""
    EmailMailbox.objects.filter(pk=mailbox.pk).update(last_uid=2)
    assert leases.record(rows(mailbox), 1, token_field="last_uid", last_error="late attempt 1") is False
    assert leases.record(rows(mailbox), 2, token_field="last_uid", last_error="attempt 2") is True
    mailbox.refresh_from_db()
    assert mailbox.last_error == "attempt 2"


def test_redrive_selects_rows_never_claimed_or_whose_lease_is_over(db):
    tenant, now = TenantFactory(), timezone.now()
    never = EmailMailbox.objects.create(tenant=tenant, address="hola@clinica.example")
    expired = EmailMailbox.objects.create(tenant=tenant, address="citas@clinica.example", lease_until=now)
    live = EmailMailbox.objects.create(
        tenant=tenant, address="urgencias@clinica.example", lease_until=now + timedelta(seconds=1)
    )
    due = leases.due(EmailMailbox.objects.filter(tenant=tenant), now)
    assert set(due.values_list("pk", flat=True)) == {never.pk, expired.pk}
    assert live.pk not in set(due.values_list("pk", flat=True))


def test_a_json_mark_is_claimed_taken_over_with_attempt_plus_one_and_fenced(db):
    row = InteractionFactory()
    t0 = timezone.now()
    first = leases.mark_claim(None, now=t0, lease=LEASE)
    assert first is not None and (first.attempt, first.taken_over) == (1, False)
    Interaction.objects.filter(pk=row.pk).update(workflow={"reply": {"SM1😊": first.mark}})
    mark = Interaction.objects.get(pk=row.pk).workflow["reply"]["SM1😊"]
    assert leases.mark_live(mark, t0 + LEASE - timedelta(seconds=1))
    assert leases.mark_claim(mark, now=t0 + timedelta(seconds=5), lease=LEASE) is None  # live: loses
    second = leases.mark_claim(mark, now=t0 + LEASE, lease=LEASE)
    assert second is not None and (second.attempt, second.taken_over) == (2, True)
    assert leases.mark_held(second.mark, second.token) and not leases.mark_held(second.mark, first.token)
    assert not leases.mark_live({"attempt": 1, "lease_until": "mañana"}, t0)  # unreadable: not live


def test_redrive_of_json_marks_selects_unclaimed_and_expired_ones_in_sql(db):
    now = timezone.now()
    unclaimed = InteractionFactory()
    expired = InteractionFactory(workflow={"claim": {"attempt": 1, "token": "a", "lease_until": now.isoformat()}})
    live = InteractionFactory(
        workflow={"claim": {"attempt": 1, "token": "b", "lease_until": (now + LEASE).isoformat()}}
    )
    ids = [unclaimed.pk, expired.pk, live.pk]
    found = (
        Interaction.objects.filter(pk__in=ids)
        .annotate(claim_until=leases.mark_lease_until_sql("workflow__claim"))
        .filter(leases.free("claim_until", now))
    )
    assert set(found.values_list("pk", flat=True)) == {unclaimed.pk, expired.pk}


def test_a_task_lease_outlasts_the_hard_time_limit_by_the_skew(settings):
    settings.CELERY_TASK_TIME_LIMIT = 120
    assert leases.task_lease() == timedelta(seconds=120) + leases.SKEW
    assert leases.task_lease(45 + 15) == timedelta(seconds=60) + leases.SKEW
    assert leases.request_lease(10.0) == timedelta(seconds=20) + leases.SKEW


def test_rows_that_store_the_claim_time_are_due_once_it_is_a_lease_old(db):
    tenant, now, lease = TenantFactory(), timezone.now(), timedelta(seconds=60)
    fresh = EmailMailbox.objects.create(tenant=tenant, address="a@x.example", last_polled_at=now - lease / 2)
    old = EmailMailbox.objects.create(tenant=tenant, address="b@x.example", last_polled_at=now - lease)
    never = EmailMailbox.objects.create(tenant=tenant, address="c@x.example")
    due = leases.due_since(EmailMailbox.objects.filter(tenant=tenant), now, lease, field="last_polled_at")
    assert set(due.values_list("pk", flat=True)) == {old.pk, never.pk}
    assert leases.live_since(fresh.last_polled_at, lease, now)
    assert not leases.live_since(old.last_polled_at, lease, now) and not leases.live_since(None, lease, now)
