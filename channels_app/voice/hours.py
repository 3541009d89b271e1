"""Is the clinic open? Opening hours are the tenant's bookable hours (``conversations.AgentSettings``).

``bookable_hours`` maps ``mon``…``sun`` to ``[["HH:MM", "HH:MM"], …]`` windows in the tenant's time zone;
outside every window of the day the clinic is closed and the voice agent offers voicemail in its greeting.
A tenant without an ``AgentSettings`` row uses the model's defaults (weekdays 09:00–17:00).
"""

from __future__ import annotations

from datetime import datetime, time

from conversations.models import AgentSettings

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def is_after_hours(tenant, now: datetime) -> bool:
    """True when ``now`` (aware) falls outside all of today's opening windows, in the tenant's time zone."""
    settings = AgentSettings.objects.filter(tenant=tenant).first() or AgentSettings(tenant=tenant)
    local = now.astimezone(tenant.tzinfo)
    for start, end in (settings.bookable_hours or {}).get(WEEKDAYS[local.weekday()], []):
        if time.fromisoformat(start) <= local.time() < time.fromisoformat(end):
            return False
    return True
