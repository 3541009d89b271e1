"""``GET /api/v1/audit-events/`` (scope ``audit:read``): the credential's tenant's access audit, newest first.

Filters: ``customer`` (id), ``actor`` (username or ``api-key:<prefix>``), ``action``, ``after`` / ``before``
(ISO-8601, on ``at``). Read-only: the API offers no way to change or delete an event.
"""

from __future__ import annotations

import django_filters as df
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer

from conversations.api.authentication import request_tenant_id
from conversations.api.models import ApiScope
from conversations.api.permissions import TenantScoped
from conversations.api.views import ERRORS
from identity.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "actor_user",
            "actor_api_key",
            "action",
            "customer",
            "object_type",
            "object_id",
            "outcome",
            "ip",
            "user_agent",
            "details",
        ]


class AuditEventFilter(df.FilterSet):
    customer = df.UUIDFilter(field_name="customer_id")
    actor = df.CharFilter(field_name="actor")
    action = df.CharFilter(field_name="action")
    after = df.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    before = df.IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["customer", "actor", "action", "after", "before"]


class AtCursor(CursorPagination):
    ordering = ("-at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


@extend_schema_view(
    list=extend_schema(responses={200: AuditEventSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(responses={200: AuditEventSerializer, **ERRORS}),
)
class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Who read which patient's data, when, from where, and with what outcome."""

    permission_classes = [TenantScoped]
    renderer_classes = [JSONRenderer]
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    pagination_class = AtCursor
    required_scope = ApiScope.AUDIT_READ
    queryset = AuditEvent.objects.all()

    def get_queryset(self):
        return AuditEvent.objects.filter(tenant_id=request_tenant_id(self.request))
