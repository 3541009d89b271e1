"""``GET /api/v1/erasures/`` (scope ``interactions:read``): tombstones of the tenant's erased patients.

The incremental pull's companion of ``/api/v1/interactions/?updated_after=``: a copy kept downstream deletes
every row of each ``customer`` listed here. Each tombstone is ``{"customer": id, "erased_at": ISO-8601 UTC}`` —
an opaque id (the ``customer`` of the interaction rows) and when; nothing else about the patient. Filter
``erased_after`` (exclusive) for increments. JSON pages, newest first, or ``?format=csv`` / ``ndjson`` (columns
``customer_id``, ``erased_at``; ascending). The erased interaction rows come again through ``updated_after``
with their text removed (an erase moves their ``updated_at``).
"""

from __future__ import annotations

import django_filters as df
from django.db.models import F
from drf_spectacular.utils import extend_schema_view
from rest_framework import serializers

from conversations.api.export import ExportSpec
from conversations.api.filters import UtcIsoDateTimeFilter
from conversations.api.models import ApiScope
from conversations.api.views import StartedAtCursor, TenantExportViewSet, _detail_schema, _list_schema
from identity.models import Customer


class ErasureSerializer(serializers.ModelSerializer):
    """One tombstone: the erased customer's id and the erasure time (UTC)."""

    customer = serializers.UUIDField(source="id", read_only=True)

    class Meta:
        model = Customer
        fields = ["customer", "erased_at"]


class ErasureFilter(df.FilterSet):
    erased_after = UtcIsoDateTimeFilter(
        field_name="erased_at", lookup_expr="gt", help_text="ISO-8601; patients erased after this instant."
    )

    class Meta:
        model = Customer
        fields = ["erased_after"]


class ErasedAtCursor(StartedAtCursor):
    ordering = ("-erased_at", "-id")


@extend_schema_view(
    list=_list_schema(ErasureSerializer, "Erased patients' tombstones"), retrieve=_detail_schema(ErasureSerializer)
)
class ErasureViewSet(TenantExportViewSet):
    """Tombstones of erased patients, for downstream copies to delete theirs."""

    queryset = Customer.objects.filter(erased_at__isnull=False).annotate(customer_id=F("id"))
    serializer_class = ErasureSerializer
    filterset_class = ErasureFilter
    pagination_class = ErasedAtCursor
    required_scope = ApiScope.INTERACTIONS_READ
    export_name = "erasures"
    annotations: dict = {}  # a tombstone carries no name
    export_spec = ExportSpec(fields=("customer_id", "erased_at"), ordering=("erased_at", "id"))
