"""Admin: chat text shown as text, the start-fresh action, staff notifications; chat link page; widget.js."""

from __future__ import annotations

import time
from unittest import mock

import pytest

from channels_app.chat.links import chat_link_token
from conversations.agent.services import handoff_request
from conversations.models import SessionState, StaffNotification
from conversations.services import interaction_append_turn, session_open, state_set
from identity.services import customer_resolve

pytestmark = pytest.mark.django_db
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def chat(tenant):
    customer = customer_resolve(tenant=tenant, phone="+15551230001").customer
    interaction, _ = session_open(tenant=tenant, customer=customer, channel="chat")
    interaction_append_turn(interaction=interaction, role="customer", text=EVIL)
    return interaction


@pytest.fixture
def staff(client, django_user_model, tenant):
    from identity.models import TenantMembership

    user = django_user_model.objects.create_user("staff1", password="pw", is_staff=True, is_superuser=True)
    TenantMembership.objects.create(user=user, tenant=tenant)
    client.force_login(user)
    return user


def test_chat_html_is_escaped_in_admin(chat, staff, client):
    for url in [
        f"/admin/conversations/interaction/{chat.pk}/change/",
        f"/admin/identity/customer/{chat.customer_id}/change/",
    ]:
        html = client.get(url).content.decode()
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html, url
        assert "<script>alert(" not in html and "<img src=x" not in html


def test_start_fresh_admin_action(chat, staff, client):
    state_set(conversation=chat.conversation, key="pending", value={"intent": "book", "date": "2030-01-01"})
    response = client.post(
        "/admin/conversations/conversation/",
        {"action": "start_fresh_action", "_selected_action": [str(chat.conversation_id)]},
        follow=True,
    )
    assert response.status_code == 200
    assert not SessionState.objects.filter(conversation=chat.conversation).exists()


def test_handoff_is_listed_for_staff_and_can_be_marked_handled(chat, staff, client):
    notice = handoff_request(interaction=chat, reason=EVIL)
    html = client.get("/admin/conversations/staffnotification/?state=open").content.decode()
    assert "&lt;script&gt;" in html and "<script>alert(" not in html
    client.post(
        "/admin/conversations/staffnotification/", {"action": "mark_handled", "_selected_action": [str(notice.pk)]}
    )
    notice.refresh_from_db()
    assert notice.handled_at is not None and notice.handled_by == staff
    assert StaffNotification.objects.filter(handled_at__isnull=True).count() == 0


def test_chat_link_page_refuses_forged_and_expired_links(chat, client):
    good = chat_link_token(customer=chat.customer)
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 2 * 24 * 3600):
        expired = chat_link_token(customer=chat.customer)
    page = client.get(f"/c/{good}")
    assert page.status_code == 200 and f'data-link="{good}"' in page.content.decode()
    assert page["Referrer-Policy"] == "no-referrer"
    for token in [expired, good[:-3] + "xyz", "not-a-token"]:
        assert client.get(f"/c/{token}").status_code == 410


def test_widget_js_is_served(client):
    response = client.get("/widget.js")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    assert b"attachShadow" in response.content and b"textContent" in response.content
