"""An acknowledge link sent by SMS before a SECRET_KEY rotation still acknowledges (SECRET_KEY_FALLBACKS);
once the old key is retired it no longer does."""

from __future__ import annotations

from django.test import override_settings

from escalation.services.messages import ack_token_lookup, ack_token_string

OLD_SECRET = "old-secret-key-7f3a9c2e1b8d4f6a0e5c3b9d7a1f2e4c6b8d0a3f5e7c9b1d"
NEW_SECRET = "new-secret-key-2b4d6f8a0c1e3a5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f"


def test_ack_link_signed_with_a_retired_key(paged):
    _, token = paged
    with override_settings(SECRET_KEY=OLD_SECRET):
        sent = ack_token_string(token)
    with override_settings(SECRET_KEY=NEW_SECRET, SECRET_KEY_FALLBACKS=[OLD_SECRET]):
        assert ack_token_lookup(sent) == token
        assert ack_token_string(token) != sent  # new links carry the new key's MAC
        assert ack_token_lookup(ack_token_string(token)) == token
    with override_settings(SECRET_KEY=NEW_SECRET, SECRET_KEY_FALLBACKS=[]):
        assert ack_token_lookup(sent) is None


K1 = "k1:1f4e9a7c3b2d8e6f0a5c9b3d7e1f4a8c2b6d0e9f"
K2 = "k2:7c1e5a9f3d8b2c6e0f4a8d2b6c0e3f7a1d5b9c3e"


def test_ack_links_carry_their_key_id(paged):
    _, token = paged
    legacy = ack_token_string(token)
    with override_settings(LINK_SIGNING_KEYS=[K1]):
        signed_k1 = ack_token_string(token)
        assert signed_k1.endswith(".k1") and ack_token_lookup(signed_k1) == token
        assert ack_token_lookup(legacy) == token
    with override_settings(LINK_SIGNING_KEYS=[K2, K1]):
        assert ack_token_string(token).endswith(".k2")
        assert ack_token_lookup(signed_k1) == token
    with override_settings(LINK_SIGNING_KEYS=[K2]):
        assert ack_token_lookup(signed_k1) is None  # retired key
        assert ack_token_lookup(signed_k1[: -len("k1")] + "k2") is None  # relabelled: wrong MAC for k2
        assert ack_token_lookup(legacy) == token


def test_ack_link_with_a_kid_opens_the_page(paged, client):
    from django.conf import settings

    from escalation.services.messages import ack_link

    _, token = paged
    with override_settings(LINK_SIGNING_KEYS=[K1]):
        path = ack_link(token).replace(settings.PUBLIC_BASE_URL, "")
        assert path.endswith(".k1")
        response = client.get(path)
    assert response.status_code == 200 and b"Acknowledge" in response.content
