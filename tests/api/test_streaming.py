"""Streamed exports: flat memory over 100k rows, and a real async stream under ASGI."""

import gc

import psutil
import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from conversations.api.services import api_key_create
from tests.api.rows import insert_rows
from tests.factories import ConversationFactory


def _peak_while_streaming(get, fmt: str) -> tuple[int, int]:
    """(largest RSS growth in bytes seen while consuming the stream, lines received).

    RSS sampled after every chunk (psutil) instead of tracemalloc, which slows a 100k-row run ~20×. Buffering
    the export (a list of rows or of encoded lines) would grow RSS by well over 100 MB at 100k rows.
    """
    process = psutil.Process()
    gc.collect()
    base = peak = process.memory_info().rss
    response = get("/api/v1/interactions/", {"format": fmt})
    lines = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
        peak = max(peak, process.memory_info().rss)
    return peak - base, lines


@pytest.mark.django_db
def test_export_of_100k_rows_stays_in_flat_memory(tenant, api):
    conversation = ConversationFactory(customer__tenant=tenant)
    get = api(tenant)
    insert_rows(conversation, 10_000)
    small_peak, small_lines = _peak_while_streaming(get, "csv")
    insert_rows(conversation, 90_000)
    big_peak, big_lines = _peak_while_streaming(get, "csv")
    assert (small_lines, big_lines) == (10_001, 100_001)  # header + rows: everything was streamed
    # 10× the rows must not mean more memory: the peak is the cursor chunk + one output buffer either way.
    assert big_peak < small_peak + 16 * 1024 * 1024, (small_peak, big_peak)


@pytest.mark.django_db(transaction=True)
def test_asgi_export_is_an_async_stream(tenant):
    conversation = ConversationFactory(customer__tenant=tenant)
    insert_rows(conversation, 3_000)
    raw = api_key_create(tenant=tenant, name="asgi")[1]

    async def fetch():
        response = await AsyncClient().get(
            "/api/v1/interactions/", {"format": "ndjson"}, headers={"authorization": f"Bearer {raw}"}
        )
        assert response.status_code == 200 and response.is_async
        chunks = [chunk async for chunk in response.streaming_content]
        return chunks

    chunks = async_to_sync(fetch)()
    assert len(chunks) > 1  # really chunked, not one buffered body
    assert sum(c.count(b"\n") for c in chunks) == 3_000


@pytest.mark.django_db
def test_a_client_that_stops_reading_leaves_the_connection_usable(tenant):
    from conversations.api.export import export_chunks
    from conversations.api.views import InteractionViewSet
    from conversations.models import Interaction

    conversation = ConversationFactory(customer__tenant=tenant)
    insert_rows(conversation, 20_000)
    chunks = export_chunks(Interaction.objects.filter(tenant=tenant), InteractionViewSet.export_spec, "csv")
    assert next(chunks).startswith(b"id,customer_id,")
    chunks.close()  # what Django does when the client goes away
    assert Interaction.objects.filter(tenant=tenant).count() == 20_000
