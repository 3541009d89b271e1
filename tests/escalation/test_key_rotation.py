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
