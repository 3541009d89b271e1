"""API keys in admin: created with the raw key shown once, stored hashed, revocable."""

import pytest

from conversations.api.models import ApiKey, hash_key

pytestmark = pytest.mark.django_db


def test_create_shows_key_once_and_revoke(admin_client, tenant):
    response = admin_client.post(
        "/admin/conversations/apikey/add/",
        {"tenant": str(tenant.pk), "name": "loader", "scopes": ["interactions:read"]},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"] if "csk_" in str(m)]
    raw = shown[0].rsplit(" ", 1)[-1]
    key = ApiKey.objects.get(name="loader")
    assert key.hashed_key == hash_key(raw) and raw not in key.hashed_key and key.scopes == ["interactions:read"]
    assert admin_client.get(f"/admin/conversations/apikey/{key.pk}/change/").content.decode().count(raw) == 0
    admin_client.post("/admin/conversations/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert admin_client.get("/api/v1/interactions/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
