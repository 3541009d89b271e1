"""Is the clinic open? Opening hours are the tenant's bookable hours (``conversations.AgentSettings``).

``bookable_hours`` maps ``mon``…``sun`` to ``[["HH:MM", "HH:MM"], …]`` windows in the tenant's time zone; a
window may end at ``"24:00"`` (the end of the day), so ``["00:00", "24:00"]`` is open around the clock. Outside
every window of the day the clinic is closed and the voice agent offers voicemail in its greeting. The windows
are read exactly as booking reads them (:func:`conversations.appointments.day_windows`). A tenant without an
``AgentSettings`` row uses the model's defaults (weekdays 09:00–17:00).
"""

from __future__ import annotations

from datetime import datetime

from conversations.appointments import agent_settings_for, day_windows


def is_after_hours(tenant, now: datetime) -> bool:
    """True when ``now`` (aware) falls outside all of today's opening windows, in the tenant's time zone
    (a window is ``[start, end)``)."""
    tz = tenant.tzinfo
    local = now.astimezone(tz)
    windows = day_windows(agent_settings_for(tenant), local.date(), tz)
    return not any(opens <= local < closes for opens, closes in windows)
