"""Top-level URLs (the public contract in DESIGN.md)."""

from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from callsphere.metrics import metrics_view


def healthz(request):
    """Liveness and readiness: 200 with ``{"db": "ok"}`` when the database answers, 503 otherwise."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means not ready
        return JsonResponse({"db": "down"}, status=503)
    return JsonResponse({"db": "ok"})


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/otp/", include("identity.otp_views")),  # two-factor enrolment and verification
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/", include("callsphere.api_urls")),
    path("", include("channels_app.urls")),
    path("", include("escalation.urls")),
    path("", include("crm.urls")),
]
