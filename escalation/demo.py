"""Demo on-call data for ``seed_demo`` (idempotent): two clinicians in a weekly rotation, a two-step policy
(primary, then backup, 20 s each, one repeat) and settings that page at any hour so the demo always works."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from escalation.models import (
    EscalationPolicy,
    EscalationSettings,
    EscalationStep,
    Responder,
    Schedule,
    ScheduleMember,
    StepTarget,
)

CLINICIANS = [
    ("Dr. Avery Chen", "+15550100101", "America/New_York"),
    ("Dr. Blake Rivera", "+15550100102", "America/Chicago"),
]
DEMO_WAIT_SECONDS = 20


def seed(tenant) -> dict:
    """Create the demo tenant's responders, schedule, policy and settings if missing; return a summary."""
    with transaction.atomic():
        responders = [
            Responder.objects.get_or_create(tenant=tenant, phone=phone, defaults={"name": name, "timezone": tz})[0]
            for name, phone, tz in CLINICIANS
        ]
        schedule, created = Schedule.objects.get_or_create(
            tenant=tenant,
            name="Clinicians on call",
            defaults={"rotation_start": dt.date(2024, 1, 1), "rotation_days": 7, "handoff_time": dt.time(8, 0)},
        )
        if created:
            for position, responder in enumerate(responders):
                ScheduleMember.objects.create(schedule=schedule, responder=responder, position=position)
        policy, created = EscalationPolicy.objects.get_or_create(
            tenant=tenant, name="After-hours emergencies", defaults={"repeat_count": 1}
        )
        if created:
            EscalationStep.objects.create(
                policy=policy,
                order=0,
                target=StepTarget.SCHEDULE_PRIMARY,
                schedule=schedule,
                wait_seconds=DEMO_WAIT_SECONDS,
            )
            EscalationStep.objects.create(
                policy=policy,
                order=1,
                target=StepTarget.SCHEDULE_BACKUP,
                schedule=schedule,
                wait_seconds=DEMO_WAIT_SECONDS,
            )
        EscalationSettings.objects.get_or_create(
            tenant=tenant, defaults={"default_policy": policy, "escalate_in_business_hours": True}
        )
    return {
        "escalation": {
            "responders": [{"name": r.name, "phone": r.phone} for r in responders],
            "policy": policy.name,
            "wait_seconds": DEMO_WAIT_SECONDS,
        }
    }
