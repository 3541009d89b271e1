"""``GET /api/v1/escalation/attempts/``: the SLA export of notification attempts for a date range;
``GET /api/v1/escalation/sla/weekly/``: median / p90 time to acknowledge and the breach rate per week.

Authenticated by the API's default classes (per-tenant API keys with ``reports:read``, or a staff session
with a tenant membership — ``conversations.api.permissions.TenantScoped``); rows are always the caller's
tenant's. CSV by default (streamed), JSON with ``?format=json`` or ``Accept: application/json``.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.api.authentication import request_tenant_id
from conversations.api.models import ApiScope
from conversations.api.permissions import TenantScoped
from escalation.api.csv_export import COLUMNS, attempt_row, csv_response
from escalation.selectors import SLA_WEEK_COLUMNS, attempts_for_report, sla_weekly

MAX_RANGE = timedelta(days=366)
DEFAULT_RANGE = timedelta(days=90)


class CsvRenderer(BaseRenderer):
    """Content negotiation only: the view streams the CSV itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, (bytes, str)) else str(data)


class RangeQuery(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First day (UTC), default 90 days ago.")
    end = serializers.DateField(required=False, help_text="Last day (UTC, included), default today.")

    def validate(self, attrs):
        today = timezone.now().date()
        attrs.setdefault("end", today)
        attrs.setdefault("start", attrs["end"] - DEFAULT_RANGE)
        if attrs["start"] > attrs["end"]:
            raise serializers.ValidationError("start must not be after end")
        if attrs["end"] - attrs["start"] > MAX_RANGE:
            raise serializers.ValidationError("at most 366 days per export")
        return attrs


class AttemptExportView(APIView):
    """Every notification attempt created in ``[start, end]`` with its timestamps, lateness and the incident's
    acknowledgement (who, how, time to ack) — one row per attempt, oldest first."""

    permission_classes = [TenantScoped]
    required_scope = ApiScope.REPORTS_READ
    renderer_classes = [CsvRenderer, JSONRenderer]

    @extend_schema(
        parameters=[RangeQuery],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=f"CSV columns: {', '.join(COLUMNS)}"),
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT, description="{count, rows: [{column: value}]}"
            ),
        },
    )
    def get(self, request):
        query = RangeQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = query.validated_data["start"], query.validated_data["end"]
        rows = attempts_for_report(tenant_id=request_tenant_id(request), start=start, end=end)
        if request.accepted_renderer.format == "csv":
            return csv_response(rows, filename=f"escalation-attempts-{start}-{end}.csv")
        data = [
            dict(
                zip(
                    COLUMNS,
                    (str(v) if not isinstance(v, (int, float, str)) else v for v in attempt_row(a)),
                    strict=True,
                )
            )
            for a in rows
        ]
        return Response({"count": len(data), "start": start, "end": end, "rows": data})


class SlaWeeklyView(APIView):
    """Per ISO week (Monday, UTC) of incidents raised in ``[start, end]``: incidents, acknowledged, median and p90
    time to acknowledge (seconds), breaches of the tenant's SLA target and the breach rate (0..1)."""

    permission_classes = [TenantScoped]
    required_scope = ApiScope.REPORTS_READ
    renderer_classes = [CsvRenderer, JSONRenderer]

    @extend_schema(
        parameters=[RangeQuery],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description=f"CSV columns: {', '.join(SLA_WEEK_COLUMNS)}"
            ),
            (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="{start, end, weeks: [...]}"),
        },
    )
    def get(self, request):
        query = RangeQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = query.validated_data["start"], query.validated_data["end"]
        weeks = sla_weekly(tenant_id=request_tenant_id(request), start=start, end=end)
        if request.accepted_renderer.format == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=SLA_WEEK_COLUMNS)
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in w.items()} for w in weeks)
            response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="escalation-sla-weekly-{start}-{end}.csv"'
            return response
        return Response({"start": start, "end": end, "weeks": weeks})
