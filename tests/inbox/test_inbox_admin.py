"""The staff inbox in admin: order, rows, filters, full-text search, conversation view, tenant isolation."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from channels_app.sms.services import sms_deliver
from conversations import services
from conversations.agent.services import handoff_request
from conversations.inbox.models import InboxNote
from conversations.models import ChannelMessage, Conversation
from conversations.selectors import ai_paused
from identity.models import TenantMembership
from identity.services import customer_resolve
from providers.sms import LocmemSmsBackend

pytestmark = pytest.mark.django_db


def staff_for(tenant, django_user_model, username):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True, first_name=username.title())
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["identity", "conversations"]))
    TenantMembership.objects.create(user=user, tenant=tenant)
    return user


def talk(tenant, phone, text, name="", channel="sms"):
    customer = customer_resolve(tenant=tenant, phone=phone, display_name=name).customer
    row, _ = services.session_open(tenant=tenant, customer=customer, channel=channel)
    services.interaction_append_turn(interaction=row, role="customer", text=text)
    return row


@pytest.fixture
def clinic_a(tenant, django_user_model, client):
    calm = talk(tenant, "+14155550001", "Can I book a cleaning next week?", name="Carl Calm")
    person = talk(tenant, "+14155550002", "Can I talk to a real person please?")  # no name given
    handoff_request(interaction=person, reason="The patient asked for a person.")
    client.force_login(staff_for(tenant, django_user_model, "anna"))
    return calm, person


def test_needs_human_first_with_name_never_uuid(clinic_a, client):
    calm, person = clinic_a
    response = client.get("/admin/conversations/inboxconversation/")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index("+14155550002") < body.index("Carl Calm")  # needs a human first; phone when no name
    assert "needs a human" in body and "Can I talk to a real person please?" in body
    assert str(person.customer_id) not in body and f"Customer {str(person.customer_id)[:8]}" not in body
    rows = response.context["rows"]
    assert [r["id"] for r in rows] == [person.conversation_id, calm.conversation_id]


def test_filters_and_full_text_search(clinic_a, client):
    calm, person = clinic_a
    url = "/admin/conversations/inboxconversation/"

    def ids(**params):
        return [r["id"] for r in client.get(url, params).context["rows"]]

    assert ids(q="cleaning") == [calm.conversation_id]
    assert ids(q="person") == [person.conversation_id]
    assert ids(q="nothing-like-this") == []
    assert ids(channel="chat") == []
    assert ids(who="mine") == []
    assert set(ids(who="unassigned")) == {calm.conversation_id, person.conversation_id}


def test_other_clinic_sees_nothing(clinic_a, other_tenant, django_user_model, client):
    calm, person = clinic_a
    client.force_login(staff_for(other_tenant, django_user_model, "bob"))
    response = client.get("/admin/conversations/inboxconversation/", {"status": "active"})
    assert response.context["rows"] == []
    assert client.get("/admin/conversations/inboxconversation/", {"q": "person"}).context["rows"] == []
    base = f"/admin/conversations/inboxconversation/{person.conversation_id}"
    assert client.get(f"{base}/").status_code == 404
    assert client.get(f"{base}/thread/").status_code == 404
    assert client.post(f"{base}/act/", {"action": "reply", "body": "hi"}).status_code == 404
    assert not ChannelMessage.objects.filter(direction="outbound").exists()


def test_conversation_view_reply_note_takeover_release(clinic_a, client):
    _, person = clinic_a
    base = f"/admin/conversations/inboxconversation/{person.conversation_id}"
    page = client.get(f"{base}/").content.decode()
    assert "Take over" in page and "Return to AI" in page and "+14155550002" in page
    response = client.post(f"{base}/act/", {"action": "reply", "body": "Hi, Anna here <b>!</b>"})
    assert response.status_code == 302
    outbound = ChannelMessage.objects.get(direction="outbound")
    assert outbound.interaction.transcript[-1]["role"] == "staff"
    sms_deliver(message_id=outbound.pk)
    assert LocmemSmsBackend.outbox[0]["to"] == "+14155550002"
    assert ai_paused(person.conversation_id)
    client.post(f"{base}/act/", {"action": "note", "body": "Called her back <script>x</script>"})
    assert InboxNote.objects.get().body.startswith("Called her back")
    thread = client.get(f"{base}/thread/").content.decode()
    assert "Hi, Anna here &lt;b&gt;!&lt;/b&gt;" in thread and "&lt;script&gt;" in thread and "<script>x" not in thread
    client.post(f"{base}/act/", {"action": "release"})
    assert not ai_paused(person.conversation_id)
    assert Conversation.objects.get(pk=person.conversation_id).handling.needs_human is False


def test_login_lands_in_the_inbox(client):
    form = client.get("/admin/login/").content.decode()
    assert 'name="next" value="/admin/conversations/inboxconversation/"' in form
    assert 'name="next" value="/admin/identity/"' in client.get("/admin/login/?next=/admin/identity/").content.decode()


def test_urgent_and_waiting_come_first_and_urgency_filters(clinic_a, tenant, client):
    calm, person = clinic_a
    urgent = talk(tenant, "+14155550003", "My chest hurts badly", name="Una Urgent")
    services.interaction_set_assessment(interaction=urgent, urgency=5)
    services.interaction_append_turn(interaction=calm, role="customer", text="Still there?")  # newest activity
    url = "/admin/conversations/inboxconversation/"
    rows = client.get(url).context["rows"]
    assert {r["id"] for r in rows[:2]} == {person.conversation_id, urgent.conversation_id}
    assert rows[2]["id"] == calm.conversation_id and not rows[2]["needs"]
    assert [r["id"] for r in client.get(url, {"urgency": "4"}).context["rows"]] == [urgent.conversation_id]
    assert "cs-urgency-5" in client.get(url).content.decode()


def test_canned_responses_fill_variables_and_stay_in_their_clinic(clinic_a, tenant, other_tenant, client):
    from conversations.inbox.models import CannedResponse

    calm, _ = clinic_a
    CannedResponse.objects.create(
        tenant=tenant,
        title="Hello",
        body="Hi {patient_first_name}, {staff_first_name} of {clinic} here. {unknown.__class__}",
    )
    CannedResponse.objects.create(tenant=other_tenant, title="Theirs", body="Not yours")
    page = client.get(f"/admin/conversations/inboxconversation/{calm.conversation_id}/")
    assert page.context["canned"] == [("Hello", f"Hi Carl, Anna of {tenant.short_name} here. {{unknown.__class__}}")]
    assert "Not yours" not in page.content.decode()
