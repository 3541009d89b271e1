"""Routes under ``/api/v1/``. Each app contributes its own router."""

from django.urls import include, path

urlpatterns: list = [
    path("", include("conversations.api.urls")),
    path("", include("escalation.api.urls")),
]
