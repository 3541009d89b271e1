"""``/api/v1/escalation/…``."""

from django.urls import path

from escalation.api.views import AttemptExportView

urlpatterns = [
    path("escalation/attempts/", AttemptExportView.as_view(), name="api-escalation-attempts"),
]
