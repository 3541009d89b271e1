"""Reads: who is on call at T, quiet and business hours, step targets, incidents for an SMS ack, SLA rows."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import QuerySet

from escalation.models import (
    EscalationSettings,
    Incident,
    NotificationAttempt,
    OnCallRole,
    Responder,
    Schedule,
    ScheduleOverride,
    StepTarget,
    Team,
)
from identity.models import Tenant


@dataclass(frozen=True)
class OnCall:
    """Who holds each role of a schedule at one instant (either may be None: empty schedule, one member)."""

    primary: Responder | None
    backup: Responder | None


def shift_index(*, schedule: Schedule, at: datetime, tz) -> int:
    """The rotation shift number at ``at``: shift 0 starts on ``rotation_start`` at ``handoff_time`` (local).

    Computed on the local wall clock, so a handoff at 08:00 stays at 08:00 across DST changes. Negative before
    the rotation starts.
    """
    local = at.astimezone(tz)
    days = (local.date() - schedule.rotation_start).days
    if local.time() < schedule.handoff_time:
        days -= 1
    return days // schedule.rotation_days


def oncall_at(*, schedule: Schedule, at: datetime) -> OnCall:
    """Primary and backup of ``schedule`` at ``at`` (aware): the rotation, then overrides on top.

    The rotation gives member ``k % n`` as primary and ``(k + 1) % n`` as backup in shift ``k`` (see
    :func:`shift_index`; the handoff is in the tenant's time zone). An override active at ``at`` (``starts_at
    <= at < ends_at``) replaces its role; the most recently created override wins. Inactive responders are
    never on call.
    """
    members = [
        m.responder for m in schedule.members.select_related("responder").order_by("position") if m.responder.active
    ]
    primary = backup = None
    if members:
        k = shift_index(schedule=schedule, at=at, tz=zoneinfo.ZoneInfo(schedule.tenant.timezone))
        primary = members[k % len(members)]
        backup = members[(k + 1) % len(members)] if len(members) > 1 else None
    overrides = (
        ScheduleOverride.objects.filter(schedule=schedule, starts_at__lte=at, ends_at__gt=at, responder__active=True)
        .select_related("responder")
        .order_by("created_at", "id")
    )
    for override in overrides:  # later overrides win
        if override.role == OnCallRole.PRIMARY:
            primary = override.responder
        else:
            backup = override.responder
    if backup is not None and primary is not None and backup.pk == primary.pk:
        backup = None
    return OnCall(primary=primary, backup=backup)


def _in_interval(now: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= now < end
    return now >= start or now < end  # crosses midnight, e.g. 22:00–07:00


def in_quiet_hours(*, responder: Responder, at: datetime) -> bool:
    """True if ``at`` falls in the responder's quiet hours, read on THEIR wall clock (their time zone)."""
    if responder.quiet_start is None or responder.quiet_end is None or responder.quiet_start == responder.quiet_end:
        return False
    return _in_interval(at.astimezone(responder.tzinfo).time(), responder.quiet_start, responder.quiet_end)


def is_business_hours(*, tenant: Tenant, config: EscalationSettings, at: datetime) -> bool:
    """True if ``at`` is inside the tenant's business hours (``config.business_hours``, tenant time zone).

    An interval ``[start, end)`` may cross midnight; equal bounds (``["00:00", "00:00"]``) mean the whole day.
    """
    local = at.astimezone(tenant.tzinfo)
    for start, end in (config.business_hours or {}).get(str(local.isoweekday()), []):
        start_t, end_t = time.fromisoformat(start), time.fromisoformat(end)
        if start_t == end_t or _in_interval(local.time(), start_t, end_t):  # equal bounds: the whole day
            return True
    return False


def step_targets(*, tenant: Tenant, step: dict, at: datetime) -> list[Responder]:
    """The active responders a frozen step (see ``Incident.policy_snapshot``) names at ``at``, in order.

    Targets that no longer exist (deleted schedule, responder, team) resolve to nobody; the caller falls
    through to the next step.
    """
    kind = step["target"]
    if kind in (StepTarget.SCHEDULE_PRIMARY, StepTarget.SCHEDULE_BACKUP):
        schedule = Schedule.objects.filter(tenant=tenant, pk=step.get("schedule_id")).first()
        if schedule is None:
            return []
        schedule.tenant = tenant
        oncall = oncall_at(schedule=schedule, at=at)
        person = oncall.primary if kind == StepTarget.SCHEDULE_PRIMARY else oncall.backup
        return [person] if person else []
    if kind == StepTarget.RESPONDER:
        return list(Responder.objects.filter(tenant=tenant, pk=step.get("responder_id"), active=True))
    if kind == StepTarget.TEAM:
        team = Team.objects.filter(tenant=tenant, pk=step.get("team_id")).first()
        return list(team.members.filter(active=True).order_by("name", "id")) if team else []
    return []


def open_incident_for_responder(*, tenant: Tenant, phone: str) -> tuple[Responder | None, Incident | None]:
    """The responder with this E.164 phone and the newest still-paging incident that paged them (not merely
    skipped them), or ``(responder_or_None, None)``."""
    responder = Responder.objects.filter(tenant=tenant, phone=phone).first()
    if responder is None:
        return None, None
    paged = (
        NotificationAttempt.objects.filter(responder=responder)
        .exclude(status=NotificationAttempt.Status.SKIPPED)
        .values("incident_id")
    )
    incident = (
        Incident.objects.filter(tenant=tenant, status=Incident.Status.TRIGGERED, pk__in=paged)
        .order_by("-raised_at")
        .first()
    )
    return responder, incident


def attempts_for_report(*, tenant_id, start: date | datetime, end: date | datetime) -> QuerySet:
    """The tenant's notification attempts created from ``start`` to ``end``, oldest first, with incident and
    responder loaded — the rows of the SLA CSV. Datetimes bound ``[start, end)``; dates are whole UTC days,
    both included."""
    if not isinstance(start, datetime):
        start = datetime.combine(start, time.min).replace(tzinfo=_utc())
    if not isinstance(end, datetime):
        end = datetime.combine(end, time.min).replace(tzinfo=_utc()) + timedelta(days=1)
    return (
        NotificationAttempt.objects.filter(tenant_id=tenant_id, created_at__gte=start, created_at__lt=end)
        .select_related("incident", "responder", "incident__acknowledged_by")
        .order_by("created_at", "id")
    )


def _utc():

    return UTC


@dataclass(frozen=True)
class PipelineHealth:
    """The escalation pipeline's heartbeats at ``checked_at``: ``ok`` when every source beat within
    ``max_age_seconds`` (settings: ``ESCALATION_HEARTBEAT_MAX_AGE``); ``beats`` maps each source to
    ``{"at", "age_seconds", "lag_seconds"}`` (None: never beat); ``outage_since`` is the open outage's start."""

    ok: bool
    checked_at: datetime
    max_age_seconds: float
    beats: dict
    stale: list[str]
    outage_since: datetime | None


def pipeline_health(*, now: datetime | None = None) -> PipelineHealth:
    """Read the heartbeats and the open outage (two small queries; changes nothing)."""
    from django.conf import settings
    from django.utils import timezone

    from escalation.models import PipelineHeartbeat, PipelineOutage

    now = now or timezone.now()
    max_age = float(settings.ESCALATION_HEARTBEAT_MAX_AGE)
    rows = {row.source: row for row in PipelineHeartbeat.objects.all()}
    beats: dict = {}
    stale = []
    for source in PipelineHeartbeat.Source.values:
        row = rows.get(source)
        if row is None:
            beats[source] = None
            stale.append(source)
            continue
        age = max(0.0, (now - row.at).total_seconds())
        beats[source] = {"at": row.at, "age_seconds": round(age, 1), "lag_seconds": round(row.lag_seconds, 3)}
        if age > max_age:
            stale.append(source)
    outage = PipelineOutage.objects.filter(ended_at__isnull=True).values_list("started_at", flat=True).first()
    return PipelineHealth(not stale, now, max_age, beats, stale, outage)


def sla_breached(incident: Incident, now: datetime | None = None) -> bool:
    """Acknowledged after ``sla_due_at``, or still not acknowledged past it (the stored flag, or computed when
    the auditor has not set it yet). Incidents without a target (raised before SLAs existed) never breach."""
    if incident.sla_breached:
        return True
    if incident.sla_due_at is None:
        return False
    if incident.acknowledged_at is not None:
        return incident.acknowledged_at > incident.sla_due_at
    from django.utils import timezone

    return (now or timezone.now()) > incident.sla_due_at


def percentile(values: list[float], p: float) -> float | None:
    """Linear-interpolated percentile (PostgreSQL ``percentile_cont``): ``p`` in 0..1; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    rank = p * (len(xs) - 1)
    low = int(rank)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (xs[high] - xs[low]) * (rank - low)


SLA_WEEK_COLUMNS = [
    "week_start",
    "incidents",
    "acknowledged",
    "median_time_to_ack_seconds",
    "p90_time_to_ack_seconds",
    "breached",
    "breach_rate",
    "sla_target_seconds",
]


def sla_weekly(*, tenant_id, start: date, end: date, now: datetime | None = None) -> list[dict]:
    """Per ISO week (Monday 00:00 UTC) of incidents raised from ``start`` to ``end`` (UTC days, both included):
    count, acknowledged, median and p90 time to acknowledge (seconds, acknowledged incidents only), breaches and
    breach rate (breached / incidents, 0..1, 4 decimals). Weeks without incidents are left out."""
    first = datetime.combine(start, time.min).replace(tzinfo=_utc())
    last = datetime.combine(end, time.min).replace(tzinfo=_utc()) + timedelta(days=1)
    config = EscalationSettings.objects.filter(tenant_id=tenant_id).first()
    target = config.sla_ack_seconds if config else 300
    weeks: dict[date, list[Incident]] = {}
    rows = Incident.objects.filter(tenant_id=tenant_id, raised_at__gte=first, raised_at__lt=last).only(
        "raised_at", "acknowledged_at", "sla_due_at", "sla_breached"
    )
    for incident in rows.order_by("raised_at"):
        day = incident.raised_at.astimezone(_utc()).date()
        weeks.setdefault(day - timedelta(days=day.weekday()), []).append(incident)
    out = []
    for week, incidents in sorted(weeks.items()):
        ttas = [(i.acknowledged_at - i.raised_at).total_seconds() for i in incidents if i.acknowledged_at]
        breached = sum(sla_breached(i, now) for i in incidents)
        median, p90 = percentile(ttas, 0.5), percentile(ttas, 0.9)
        out.append(
            {
                "week_start": week,
                "incidents": len(incidents),
                "acknowledged": len(ttas),
                "median_time_to_ack_seconds": None if median is None else round(median, 3),
                "p90_time_to_ack_seconds": None if p90 is None else round(p90, 3),
                "breached": breached,
                "breach_rate": round(breached / len(incidents), 4),
                "sla_target_seconds": target,
            }
        )
    return out
