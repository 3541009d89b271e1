"""Token refresh holds no row lock or transaction across the vendor's token call, and two workers that both saw
the old token still refresh once: the second waits for the first and uses its token, never the refresh token a
rotating CRM has just replaced. HubSpot's token endpoint is the local stub; the second refresher is a thread."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, transaction
from django.db import connection as db

from crm.clients.base import TokenSet
from crm.models import CrmConnection
from crm.services import crm_connection_connect, crm_connection_refresh
from tests.crm.records import connect


def rotating(hubspot, gate: threading.Event, entered: threading.Event):
    """Make the stub's token endpoint rotate the refresh token (``rt-1`` → ``rt-2``: the old one is refused
    afterwards, as Salesforce does with rotation on) and hold its answer until ``gate`` is set."""
    route = hubspot.route

    def slow(request):
        if request["path"] != "/oauth/v1/token":
            return route(request)
        entered.set()
        assert gate.wait(20)
        status, headers, body = route(request)
        if status == 200:
            hubspot.refresh_tokens = {"rt-2"}
            body = {**body, "refresh_token": "rt-2"}
        return status, headers, body

    hubspot.route = slow


def in_thread(fn) -> tuple[threading.Thread, list]:
    """Run ``fn`` in a thread with its own database connection; the list gets its result or exception."""
    out: list = []

    def run():
        try:
            out.append(fn())
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)
        finally:
            db.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


@pytest.mark.django_db(transaction=True)
def test_two_workers_refresh_once_without_a_lock_held_during_the_token_call(tenant, hubspot):
    conn = connect(tenant, "hubspot")
    gate, entered = threading.Event(), threading.Event()
    rotating(hubspot, gate, entered)
    first_copy, second_copy = CrmConnection.objects.get(pk=conn.pk), CrmConnection.objects.get(pk=conn.pk)

    first, first_out = in_thread(lambda: crm_connection_refresh(connection=first_copy))
    try:
        assert entered.wait(10)  # the first worker is inside HubSpot's token call
        with transaction.atomic():  # no row lock is held meanwhile (the old code held FOR UPDATE here)
            CrmConnection.objects.select_for_update(nowait=True).get(pk=conn.pk)
        second, second_out = in_thread(lambda: crm_connection_refresh(connection=second_copy))
        second.join(0.6)
        assert second.is_alive()  # it waits for the first instead of sending rt-1 itself
    finally:
        gate.set()
    first.join(20)
    second.join(20)

    assert first_out == [None] and second_out == [None]
    assert len(hubspot.calls("POST", r"^/oauth/v1/token$")) == 1
    conn.refresh_from_db()
    assert conn.status == "active" and conn.refresh_token == "rt-2" and conn.token_version == 1
    assert conn.refresh_lease_token == "" and conn.refresh_lease_until is None
    assert first_copy.access_token == second_copy.access_token == conn.access_token != "at-1"


@pytest.mark.django_db
def test_a_reconnect_during_the_token_call_wins_over_the_refresh(tenant, hubspot, monkeypatch):
    conn = connect(tenant, "hubspot")
    from crm import services

    real = services.refresh_tokens

    def staff_reconnect_meanwhile(row):
        answer = real(row)
        crm_connection_connect(
            tenant_id=tenant.pk, provider="hubspot", tokens=TokenSet(access_token="at-consent", refresh_token="rt-9")
        )
        return answer

    monkeypatch.setattr(services, "refresh_tokens", staff_reconnect_meanwhile)
    crm_connection_refresh(connection=conn)

    conn.refresh_from_db()
    assert (conn.access_token, conn.refresh_token) == ("at-consent", "rt-9")  # not overwritten by the late refresh
    assert conn.token_version == 1


@pytest.mark.django_db
def test_a_refused_refresh_token_replaced_meanwhile_does_not_disable_the_new_connection(tenant, hubspot, monkeypatch):
    conn = connect(tenant, "hubspot")
    hubspot.revoked = {"rt-1"}
    from crm import services

    real = services.refresh_tokens

    def reconnected_meanwhile(row):
        crm_connection_connect(
            tenant_id=tenant.pk, provider="hubspot", tokens=TokenSet(access_token="at-consent", refresh_token="rt-9")
        )
        return real(row)  # sends rt-1, which HubSpot refuses

    monkeypatch.setattr(services, "refresh_tokens", reconnected_meanwhile)
    crm_connection_refresh(connection=conn)

    conn.refresh_from_db()
    assert conn.status == "active" and conn.access_token == "at-consent"


def test_the_nowait_probe_fails_on_a_held_lock(tenant, transactional_db):
    """The probe above can fail: with the row locked by another connection, NOWAIT raises."""
    conn = CrmConnection.objects.create(tenant=tenant, provider="zoho")
    held, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            CrmConnection.objects.select_for_update().get(pk=conn.pk)
            held.set()
            release.wait(10)

    holder, _ = in_thread(hold)
    try:
        assert held.wait(10)
        with pytest.raises(DatabaseError), transaction.atomic():
            CrmConnection.objects.select_for_update(nowait=True).get(pk=conn.pk)
    finally:
        release.set()
        holder.join(10)
