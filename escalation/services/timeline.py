"""Mirror of notification attempts into the patient's ``call_logs`` timeline (one outbound row per attempt).

Each page of a responder appears in the patient's Customer 360 timeline as a closed outbound ``call_logs``
row (channel ``sms`` or ``voice``) whose ``metadata["escalation"]`` carries the incident, attempt, responder,
status and provider SID. The rows are written here rather than through a conversations service because
conversations has no service for a closed, system-generated outbound record yet (see the closing note); they
are born closed, so they never hold a session open nor go through enrichment.
"""

from __future__ import annotations

from django.utils import timezone

from conversations.models import Direction, Interaction
from escalation.models import Incident, NotificationAttempt

CHANNEL_LABEL = {"sms": "SMS", "voice": "call"}


def _metadata(attempt: NotificationAttempt) -> dict:
    return {
        "escalation": {
            "incident_id": str(attempt.incident_id),
            "attempt_id": attempt.pk,  # None until inserted
            "step": attempt.step_index + 1,
            "repeat": attempt.repeat + 1,
            "responder": attempt.responder.name,
            "to": attempt.to_number,
            "status": attempt.status,
            "provider_status": attempt.provider_status,
            "provider_sid": attempt.provider_sid,
            "error_code": attempt.error_code,
        }
    }


def attempt_mirrors_create(*, attempts: list[NotificationAttempt], incident: Incident) -> list[Interaction]:
    """Create the timeline rows of attempts about to be inserted (one INSERT) and set ``log_interaction`` on
    them; ``incident.interaction`` is the patient's interaction (its conversation receives the rows)."""
    source = incident.interaction
    rows = []
    for attempt in attempts:
        at = attempt.created_at
        text = (
            f"Urgent page by {CHANNEL_LABEL.get(attempt.channel, attempt.channel)} to on-call "
            f"{attempt.responder.name} (step {attempt.step_index + 1}, round {attempt.repeat + 1})"
        )
        rows.append(
            Interaction(
                tenant_id=attempt.tenant_id,
                customer_id=source.customer_id,
                conversation_id=source.conversation_id,
                channel=attempt.channel,
                direction=Direction.OUTBOUND,
                started_at=at,
                ended_at=at,
                last_activity_at=at,
                transcript=[{"role": "system", "text": text, "at": at.isoformat()}],
                metadata=_metadata(attempt),
            )
        )
    rows = Interaction.objects.bulk_create(rows)
    for attempt, row in zip(attempts, rows, strict=True):
        attempt.log_interaction = row
    return rows


def attempt_mirror_update(*, attempt: NotificationAttempt) -> None:
    """Copy the attempt's current status and SID into its timeline row (the row belongs to escalation)."""
    if attempt.log_interaction_id:
        Interaction.objects.filter(pk=attempt.log_interaction_id).update(
            metadata=_metadata(attempt), updated_at=timezone.now()
        )
