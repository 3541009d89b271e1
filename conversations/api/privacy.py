"""``POST /api/v1/customers/{id}/erase/`` (scope ``privacy:write``) and ``GET /api/v1/customers/{id}/export/``
(scope ``privacy:read``, a zip of JSON plus attachments). Another tenant's id answers 404; a refused erase
(open incident, legal hold) answers 409 with the reason."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.api.authentication import request_tenant_id
from conversations.api.models import ApiScope
from conversations.api.permissions import TenantScoped
from conversations.api.views import ERRORS
from identity.models import Customer
from identity.privacy import ErasureRefused, customer_erase, customer_export


def _customer(request, customer_id) -> Customer:
    return get_object_or_404(Customer, pk=customer_id, tenant_id=request_tenant_id(request))


class CustomerEraseView(APIView):
    """Erase everything about the patient; aggregate rows keep their numbers, anonymised."""

    permission_classes = [TenantScoped]
    renderer_classes = [JSONRenderer]
    required_scope = ApiScope.PRIVACY_WRITE

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request, customer_id):
        customer = _customer(request, customer_id)
        try:
            counts = customer_erase(customer=customer, request=request)
        except ErasureRefused as exc:
            return Response({"code": "refused", "detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response({"erased": True, "rows": counts})


class CustomerExportView(APIView):
    """Everything held about the patient, as a zip (``patient.json`` and ``files/…``)."""

    permission_classes = [TenantScoped]
    required_scope = ApiScope.PRIVACY_READ

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY, **ERRORS})
    def get(self, request, customer_id):
        content = customer_export(customer=_customer(request, customer_id), request=request)
        response = HttpResponse(content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="patient-{customer_id}.zip"'
        response["Cache-Control"] = "no-store"
        return response
