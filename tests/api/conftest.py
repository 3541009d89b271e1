import pytest

from conversations.api.services import api_key_create


@pytest.fixture
def key_for():
    def make(tenant, scopes=None):
        return api_key_create(tenant=tenant, name="test", scopes=scopes)[1]

    return make


@pytest.fixture
def api(client, key_for):
    """``api(tenant)(path, **params)`` → GET with a fresh API key of ``tenant``."""

    def for_tenant(tenant, scopes=None, key=None):
        raw = key or key_for(tenant, scopes)

        def get(path, data=None, **headers):
            return client.get(path, data or {}, HTTP_AUTHORIZATION=f"Bearer {raw}", **headers)

        return get

    return for_tenant
