"""``/ws/inbox/`` against a real daphne: staff of a clinic hear only their clinic; anonymous is refused."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from conversations import services
from conversations.inbox.services import conversation_flag_needs_human
from identity.models import TenantMembership
from identity.services import customer_resolve

pytestmark = [pytest.mark.django_db(transaction=True)]


def session_cookie(tenant, username: str) -> str:
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    TenantMembership.objects.create(user=user, tenant=tenant)
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def conversation_of(tenant, phone: str):
    customer = customer_resolve(tenant=tenant, phone=phone).customer
    row, _ = services.session_open(tenant=tenant, customer=customer, channel="sms")
    return row.conversation


class InboxSocket:
    def __init__(self, base: str, cookie: str | None, origin: str | None = None):
        self.loop = asyncio.new_event_loop()
        self.session = self.loop.run_until_complete(self._session())
        headers = {"Origin": origin or base}
        if cookie:
            headers["Cookie"] = f"sessionid={cookie}"
        url = base.replace("http", "ws", 1) + "/ws/inbox/"
        try:
            self.ws = self.loop.run_until_complete(self.session.ws_connect(url, headers=headers))
        except BaseException:
            self.close()
            raise

    async def _session(self):
        return aiohttp.ClientSession()

    def recv(self, timeout: float = 20.0) -> dict:
        msg = self.loop.run_until_complete(self.ws.receive(timeout=timeout))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data)

    def close(self):
        if getattr(self, "ws", None) is not None:
            self.loop.run_until_complete(self.ws.close())
        self.loop.run_until_complete(self.session.close())
        self.loop.close()


def test_staff_hear_only_their_clinic(daphne, tenant, other_tenant):
    mine, theirs = conversation_of(tenant, "+14155550001"), conversation_of(other_tenant, "+14155550002")
    socket_a = InboxSocket(daphne, session_cookie(tenant, "anna"))
    socket_b = InboxSocket(daphne, session_cookie(other_tenant, "bob"))
    try:
        conversation_flag_needs_human(conversation=mine, reason="asked for a person")
        conversation_flag_needs_human(conversation=theirs, reason="asked for a person")
        assert socket_a.recv() == {"type": "inbox", "conversation": str(mine.pk), "kind": "needs_human"}
        # B's first frame is its own clinic's event: A's was never sent to it
        assert socket_b.recv() == {"type": "inbox", "conversation": str(theirs.pk), "kind": "needs_human"}
    finally:
        socket_a.close()
        socket_b.close()


@pytest.mark.parametrize("who", ["anonymous", "no-clinic", "foreign-origin"])
def test_refused_without_a_clinic_session_or_from_another_site(daphne, tenant, who):
    cookie = None
    if who == "no-clinic":
        get_user_model().objects.create_user("loner", password="pw", is_staff=True)
        client = Client()
        client.force_login(get_user_model().objects.get(username="loner"))
        cookie = client.cookies["sessionid"].value
    elif who == "foreign-origin":
        cookie = session_cookie(tenant, "anna")
    origin = "https://evil.example" if who == "foreign-origin" else None
    with pytest.raises(aiohttp.WSServerHandshakeError):
        InboxSocket(daphne, cookie, origin=origin)


@pytest.mark.parametrize("who", ["scheduling-role", "admin-without-code"])
def test_refused_for_a_role_that_reads_no_conversations_or_a_session_without_its_second_factor(daphne, tenant, who):
    from tests.conftest import force_login_password_only

    user = get_user_model().objects.create_user(f"u-{who}", password="pw", is_staff=True)
    role = "scheduling" if who == "scheduling-role" else "admin"
    TenantMembership.objects.create(user=user, tenant=tenant, role=role)
    client = Client()
    if who == "scheduling-role":
        client.force_login(user)  # fully signed in (password and code): still no patient conversations
    else:
        force_login_password_only(client, user)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        InboxSocket(daphne, client.cookies["sessionid"].value)


def test_clinic_admin_with_a_verified_session_is_accepted(daphne, tenant):
    user = get_user_model().objects.create_user("boss", password="pw", is_staff=True)
    TenantMembership.objects.create(user=user, tenant=tenant, role="admin")
    client = Client()
    client.force_login(user)  # tests/conftest.py: password and a verified TOTP device
    socket = InboxSocket(daphne, client.cookies["sessionid"].value)
    try:
        conversation = conversation_of(tenant, "+14155550003")
        conversation_flag_needs_human(conversation=conversation, reason="asked for a person")
        assert socket.recv()["conversation"] == str(conversation.pk)
    finally:
        socket.close()
