"""Export API views: interactions, conversations, appointments, Customer 360 and the quarterly review.

Every queryset is filtered by the credential's tenant (:func:`~conversations.api.authentication.request_tenant_id`),
so an id of another tenant answers 404. List endpoints answer JSON pages (cursor pagination) or, with
``?format=csv`` / ``?format=ndjson`` (or the matching ``Accept``), the whole filtered set as a stream.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F
from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers as drf
from rest_framework import viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.analytics.quarterly import MAX_COHORT, QUARTER, quarterly_review
from conversations.analytics.timeline import MAX_LIMIT, customer_timeline
from conversations.api import serializers as s
from conversations.api.authentication import request_tenant_id
from conversations.api.export import ExportSpec, streaming_export
from conversations.api.filters import AppointmentFilter, ConversationFilter, InteractionFilter, UtcIsoDateTimeField
from conversations.api.models import ApiScope
from conversations.api.permissions import TenantScoped
from conversations.api.renderers import CSVRenderer, NDJSONRenderer
from conversations.models import Appointment, Channel, Conversation, Interaction
from identity.audit import audit_filters, audit_record
from identity.models import Customer, Tenant

STREAM_FORMATS = ("csv", "ndjson")


def _tenant(request) -> Tenant:
    return Tenant.objects.get(pk=request_tenant_id(request))


class StartedAtCursor(CursorPagination):
    ordering = ("-started_at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def decode_cursor(self, request):
        """DRF's cursor, with its position (a client-supplied string) validated as a UTC datetime: a forged
        position is "Invalid cursor" (404, as DRF answers any bad cursor), never a database error."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                position = UtcIsoDateTimeField().clean(cursor.position)
            except DjangoValidationError as exc:
                raise NotFound(self.invalid_cursor_message) from exc
            if position is None:
                raise NotFound(self.invalid_cursor_message)
        return cursor


class OpenedAtCursor(StartedAtCursor):
    ordering = ("-opened_at", "-id")


class StartsAtCursor(StartedAtCursor):
    ordering = ("-starts_at", "-id")


#: The error answers every endpoint may give (DRF's ``{"detail": …}`` or a field → messages object).
ERRORS = {
    (400, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid parameters."),
    (401, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="No or bad credentials."),
    (403, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="The key lacks the scope."),
    (404, "application/json"): OpenApiResponse(
        OpenApiTypes.OBJECT, description="Unknown id (or another tenant's), or an invalid cursor."
    ),
}


def _list_schema(serializer, name: str):
    return extend_schema(
        description=(
            f"{name} of the credential's tenant, newest first, as JSON pages (follow `next`). With "
            "`?format=csv` or `?format=ndjson` (or `Accept: text/csv` / `application/x-ndjson`) the "
            "whole filtered set streams in ascending time order, unpaginated; jsonb columns are "
            "JSON text in CSV."
        ),
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=["json", "csv", "ndjson"],
                description="Response format (default json).",
            )
        ],
        responses={
            (200, "application/json"): serializer(many=True),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a header row."),
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR, description="One JSON object a line."),
            **ERRORS,
        },
    )


def _detail_schema(serializer):
    return extend_schema(
        responses={(200, "application/json"): serializer, **ERRORS},
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=["json"], description="Always json here.")],
    )


#: The patient's name beside the customer id in every export (``Customer.display_name``; one join, no query per row).
CUSTOMER_NAME = {"customer_name": F("customer__display_name")}


class TenantExportViewSet(viewsets.ReadOnlyModelViewSet):
    """Read-only, tenant-scoped, streamable. Subclasses set model, serializer, filter, scope and export spec."""

    permission_classes = [TenantScoped]
    renderer_classes = [JSONRenderer, CSVRenderer, NDJSONRenderer]
    lookup_value_converter = "uuid"
    export_spec: ExportSpec
    export_name = "export"
    annotations: dict = CUSTOMER_NAME  # rows of a patient carry the patient's name; {} where rows are patients

    def get_queryset(self):
        """This key's tenant's rows, each with the patient's name (``customer_name``, one join)."""
        return self.queryset.filter(tenant_id=request_tenant_id(self.request)).annotate(**self.annotations)

    def get_renderers(self):
        if self.action != "list":
            return [JSONRenderer()]
        return super().get_renderers()

    def finalize_response(self, request, response, *args, **kwargs):
        """Errors are JSON whatever format was asked for (as documented): a 400 for ``?format=csv`` is
        ``{"field": […]}``, not a one-row CSV."""
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def _audit_list(self, request, fmt: str, rows: int) -> None:
        customer = request.query_params.get("customer")
        try:
            customer_id = uuid.UUID(customer) if customer else None
        except ValueError:
            customer_id = None
        audit_record(
            request=request,
            action="api.export" if fmt in STREAM_FORMATS else "api.list",
            tenant_id=request_tenant_id(request),
            customer_id=customer_id,
            object_type=self.queryset.model._meta.label_lower,
            details={"filters": audit_filters(request.query_params), "rows": rows, "format": fmt},
        )

    def list(self, request, *args, **kwargs):
        fmt = getattr(request.accepted_renderer, "format", "json")
        if fmt in STREAM_FORMATS:
            queryset = self.filter_queryset(self.get_queryset())
            self._audit_list(request, fmt, queryset.count())
            return streaming_export(request, queryset, self.export_spec, fmt, self.export_name)
        response = super().list(request, *args, **kwargs)
        if response.status_code == 200:
            self._audit_list(request, fmt, len(response.data.get("results", [])))
        return response

    def retrieve(self, request, *args, **kwargs):
        instance = self.get_object()
        audit_record(
            request=request,
            action="api.read",
            tenant_id=instance.tenant_id,
            customer_id=getattr(instance, "customer_id", None),
            obj=instance,
        )
        return Response(self.get_serializer(instance).data)


@extend_schema_view(
    list=_list_schema(s.InteractionSerializer, "Interactions (call_logs rows)"),
    retrieve=_detail_schema(s.InteractionSerializer),
)
class InteractionViewSet(TenantExportViewSet):
    """The unified interaction log of every channel."""

    queryset = Interaction.objects.all()
    serializer_class = s.InteractionSerializer
    filterset_class = InteractionFilter
    pagination_class = StartedAtCursor
    required_scope = ApiScope.INTERACTIONS_READ
    export_name = "interactions"
    export_spec = ExportSpec(
        fields=tuple(f if f not in ("customer", "conversation") else f"{f}_id" for f in s.INTERACTION_FIELDS),
        json_fields=("transcript", "metadata"),
        ordering=("started_at", "id"),
        annotations=CUSTOMER_NAME,
    )


@extend_schema_view(
    list=_list_schema(s.ConversationSerializer, "Conversations"), retrieve=_detail_schema(s.ConversationSerializer)
)
class ConversationViewSet(TenantExportViewSet):
    """Cross-channel threads."""

    queryset = Conversation.objects.all()
    serializer_class = s.ConversationSerializer
    filterset_class = ConversationFilter
    pagination_class = OpenedAtCursor
    required_scope = ApiScope.CONVERSATIONS_READ
    export_name = "conversations"
    export_spec = ExportSpec(
        fields=("id", "customer_id", "customer_name", "status", "opened_at", "closed_at", "last_activity_at"),
        ordering=("opened_at", "id"),
        annotations=CUSTOMER_NAME,
    )


@extend_schema_view(
    list=_list_schema(s.AppointmentSerializer, "Appointments"), retrieve=_detail_schema(s.AppointmentSerializer)
)
class AppointmentViewSet(TenantExportViewSet):
    """Booked and cancelled appointments."""

    queryset = Appointment.objects.all()
    serializer_class = s.AppointmentSerializer
    filterset_class = AppointmentFilter
    pagination_class = StartsAtCursor
    required_scope = ApiScope.APPOINTMENTS_READ
    export_name = "appointments"
    export_spec = ExportSpec(
        fields=(
            "id",
            "customer_id",
            "customer_name",
            "conversation_id",
            "resource",
            "starts_at",
            "ends_at",
            "status",
            "booked_via",
            "created_at",
            "updated_at",
        ),
        ordering=("starts_at", "id"),
        annotations=CUSTOMER_NAME,
    )


class TimelineQuery(drf.Serializer):
    channel = drf.ListField(
        child=drf.ChoiceField(choices=Channel.choices),
        required=False,
        help_text="Repeat for several channels; default all.",
    )
    start = drf.DateTimeField(required=False, help_text="ISO-8601, inclusive; default end − 30 days.")
    end = drf.DateTimeField(required=False, help_text="ISO-8601, exclusive; default now.")
    limit = drf.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_LIMIT,
        default=100,
        help_text="Interactions listed (the trends cover the whole range).",
    )


def _query(serializer_class, request) -> dict:
    data = {
        k: request.query_params.getlist(k) if k in ("channel", "customer") else v
        for k, v in request.query_params.items()
    }
    query = serializer_class(data=data)
    query.is_valid(raise_exception=True)
    return query.validated_data


class CustomerTimelineView(APIView):
    """Customer 360: every interaction of one customer across channels, with sentiment by channel and week."""

    permission_classes = [TenantScoped]
    renderer_classes = [JSONRenderer]
    required_scope = ApiScope.CUSTOMERS_READ

    @extend_schema(parameters=[TimelineQuery], responses={(200, "application/json"): s.TimelineSerializer, **ERRORS})
    def get(self, request, customer_id):
        params = _query(TimelineQuery, request)
        if params.get("start") and params.get("end") and params["start"] >= params["end"]:
            raise ValidationError({"start": "must be before end"})
        try:
            timeline = customer_timeline(
                tenant=_tenant(request),
                customer_id=customer_id,
                channels=params.get("channel"),
                start=params.get("start"),
                end=params.get("end"),
                limit=params["limit"],
            )
        except Customer.DoesNotExist as exc:
            raise Http404 from exc
        audit_record(
            request=request,
            action="api.timeline",
            tenant_id=request_tenant_id(request),
            customer_id=customer_id,
            object_type="identity.customer",
            object_id=str(customer_id),
            details={"filters": audit_filters(request.query_params)},
        )
        return Response(s.TimelineSerializer(timeline).data)


class QuarterlyQuery(drf.Serializer):
    customer = drf.ListField(
        child=drf.UUIDField(),
        min_length=1,
        max_length=MAX_COHORT,
        help_text=f"Customer ids of the cohort; repeat the parameter (1–{MAX_COHORT}).",
    )
    end = drf.DateTimeField(required=False, help_text="ISO-8601, exclusive end of the 90 days; default now.")


class QuarterlyReviewView(APIView):
    """The quarterly review: per customer, per channel, per week — mean sentiment and count over 90 days."""

    permission_classes = [TenantScoped]
    renderer_classes = [JSONRenderer]
    required_scope = ApiScope.REPORTS_READ

    @extend_schema(
        parameters=[QuarterlyQuery], responses={(200, "application/json"): s.QuarterlyReviewSerializer, **ERRORS}
    )
    def get(self, request):
        params = _query(QuarterlyQuery, request)
        tenant = _tenant(request)
        cohort = sorted(set(params["customer"]))
        if Customer.objects.filter(tenant=tenant, pk__in=cohort).count() != len(cohort):
            raise Http404("unknown customer in cohort")
        end = params.get("end") or timezone.now()
        rows = quarterly_review(tenant=tenant, customer_ids=cohort, end=end)
        for customer_id in cohort:
            audit_record(request=request, action="api.report", tenant_id=tenant.pk, customer_id=customer_id)
        return Response(s.QuarterlyReviewSerializer({"start": end - QUARTER, "end": end, "rows": rows}).data)
