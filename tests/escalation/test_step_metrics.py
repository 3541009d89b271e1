"""``callsphere_escalation_step_lateness_seconds``: a step that fires after its due time is observed with how late
it was (read through the same exposition ``/metrics`` serves)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from callsphere.metrics import exposition
from escalation import services
from escalation.models import Incident


def lateness() -> tuple[float, float]:
    """(count, sum) of the lateness histogram across every process's files."""
    found = {"count": 0.0, "sum": 0.0}
    for family in text_string_to_metric_families(exposition().decode()):
        if family.name == "callsphere_escalation_step_lateness_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    found["count"] += sample.value
                elif sample.name.endswith("_sum"):
                    found["sum"] += sample.value
    return found["count"], found["sum"]


def test_a_late_step_is_observed_with_its_lateness(paged):
    incident, _ = paged
    count, total = lateness()
    Incident.objects.filter(pk=incident.pk).update(next_step_at=timezone.now() - timedelta(seconds=42))
    incident.refresh_from_db()
    outcome = services.incident_run_step(incident_id=incident.pk, fence=incident.fence, dispatch=False)
    assert outcome.fired
    new_count, new_total = lateness()
    assert new_count == count + 1 and 42 <= new_total - total < 60

    # a stale fence fires nothing and observes nothing
    assert not services.incident_run_step(incident_id=incident.pk, fence=incident.fence, dispatch=False).fired
    assert lateness()[0] == new_count
