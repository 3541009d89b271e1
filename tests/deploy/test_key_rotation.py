"""Keys rotate without breaking what is stored or sent: a Fernet key ring for secrets at rest (newest first,
``rotate_encrypted_fields`` re-encrypts), and SECRET_KEY_FALLBACKS for chat links signed before a rotation."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from channels_app.chat.links import InvalidLink, chat_link_customer, chat_link_token
from identity.models import Tenant
from tests.factories import CustomerFactory, TenantFactory

pytestmark = pytest.mark.django_db

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
OLD_SECRET = "old-secret-key-7f3a9c2e1b8d4f6a0e5c3b9d7a1f2e4c6b8d0a3f5e7c9b1d"
NEW_SECRET = "new-secret-key-2b4d6f8a0c1e3a5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f"


def _stored_token(tenant: Tenant) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT twilio_auth_token FROM identity_tenant WHERE id = %s", [tenant.pk])
        return cursor.fetchone()[0]


def test_old_ciphertext_stays_readable_and_rotation_moves_it_to_the_newest_key():
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD]):
        tenant = TenantFactory(twilio_auth_token="f0e1d2c3b4a5968778695a4b3c2d1e0f")
    assert Fernet(OLD.encode()).decrypt(_stored_token(tenant).encode())

    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW, OLD]):
        assert Tenant.objects.get(pk=tenant.pk).twilio_auth_token == "f0e1d2c3b4a5968778695a4b3c2d1e0f"
        out = StringIO()
        call_command("rotate_encrypted_fields", stdout=out)
        assert "identity.Tenant: twilio_auth_token" in out.getvalue()
    raw = _stored_token(tenant).encode()
    assert Fernet(NEW.encode()).decrypt(raw) == b"f0e1d2c3b4a5968778695a4b3c2d1e0f"
    with pytest.raises(InvalidToken):
        Fernet(OLD.encode()).decrypt(raw)
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW]):  # the old key can now leave the ring
        assert Tenant.objects.get(pk=tenant.pk).twilio_auth_token == "f0e1d2c3b4a5968778695a4b3c2d1e0f"


def test_secrets_encrypted_under_the_secret_key_derivation_stay_readable_once_keys_are_set():
    with override_settings(FIELD_ENCRYPTION_KEYS=[], SECRET_KEY=OLD_SECRET):  # how DEBUG / older deploys stored
        tenant = TenantFactory(twilio_auth_token="9a8b7c6d5e4f30211203f4e5d6c7b8a9")
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW], SECRET_KEY=OLD_SECRET):
        assert Tenant.objects.get(pk=tenant.pk).twilio_auth_token == "9a8b7c6d5e4f30211203f4e5d6c7b8a9"
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW], SECRET_KEY=NEW_SECRET, SECRET_KEY_FALLBACKS=[OLD_SECRET]):
        assert Tenant.objects.get(pk=tenant.pk).twilio_auth_token == "9a8b7c6d5e4f30211203f4e5d6c7b8a9"
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW], SECRET_KEY=NEW_SECRET, SECRET_KEY_FALLBACKS=[]):
        with pytest.raises(InvalidToken):
            Tenant.objects.get(pk=tenant.pk)


def test_chat_link_sent_before_a_secret_key_rotation_still_opens():
    customer = CustomerFactory(display_name="Añita Ruíz")
    with override_settings(SECRET_KEY=OLD_SECRET):
        token = chat_link_token(customer=customer)
    with override_settings(SECRET_KEY=NEW_SECRET, SECRET_KEY_FALLBACKS=[OLD_SECRET]):
        assert chat_link_customer(token) == customer
    with override_settings(SECRET_KEY=NEW_SECRET, SECRET_KEY_FALLBACKS=[]):
        with pytest.raises(InvalidLink):
            chat_link_customer(token)


K1 = "k1:1f4e9a7c3b2d8e6f0a5c9b3d7e1f4a8c2b6d0e9f"
K2 = "k2:7c1e5a9f3d8b2c6e0f4a8d2b6c0e3f7a1d5b9c3e"


def test_chat_links_carry_their_key_id_and_rotate_through_link_signing_keys():
    customer = CustomerFactory(display_name="Zoë O’Brien")
    legacy = chat_link_token(customer=customer)  # made before LINK_SIGNING_KEYS existed
    with override_settings(LINK_SIGNING_KEYS=[K1]):
        signed_k1 = chat_link_token(customer=customer)
        assert signed_k1.startswith("k1~") and chat_link_customer(signed_k1) == customer
        assert chat_link_customer(legacy) == customer  # kid-less links still open
    with override_settings(LINK_SIGNING_KEYS=[K2, K1]):  # rotation: k2 signs, k1 still verifies
        assert chat_link_token(customer=customer).startswith("k2~")
        assert chat_link_customer(signed_k1) == customer
    with override_settings(LINK_SIGNING_KEYS=[K2]):  # k1 retired: its links stop, nothing else does
        with pytest.raises(InvalidLink):
            chat_link_customer(signed_k1)
        with pytest.raises(InvalidLink):
            chat_link_customer("k2~" + signed_k1.split("~", 1)[1])  # relabelled: checked with k2, refused
        assert chat_link_customer(legacy) == customer
