import json
from io import StringIO

import pytest
from django.core.management import call_command

from conversations.api.models import ApiKey

pytestmark = pytest.mark.django_db


def test_seed_demo_prints_the_same_working_key_every_time(client):
    runs = []
    for _ in range(2):
        out = StringIO()
        call_command("seed_demo", "--json", "--force", stdout=out)
        runs.append(json.loads(out.getvalue())["api_key"])
    assert runs[0] == runs[1] and runs[0].startswith("csk_") and ApiKey.objects.count() == 1
    assert client.get("/api/v1/interactions/", HTTP_AUTHORIZATION=f"Bearer {runs[0]}").status_code == 200
