"""``/api/v1/escalation/…``."""

from django.urls import path

from escalation.api.views import AttemptExportView, SlaWeeklyView

urlpatterns = [
    path("escalation/attempts/", AttemptExportView.as_view(), name="api-escalation-attempts"),
    path("escalation/sla/weekly/", SlaWeeklyView.as_view(), name="api-escalation-sla-weekly"),
]
