"""Reads of the staff inbox: the list, the cross-channel thread, the patient card, full-text search."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.contrib.postgres.aggregates import ArrayAgg
from django.contrib.postgres.search import SearchQuery
from django.db.models import Exists, F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.utils import timezone

from conversations.inbox.models import CannedResponse, ConversationHandling
from conversations.models import Appointment, Conversation, Interaction, TranscriptDocument
from identity.models import Customer, CustomerIdentifier, IdentifierKind

URGENT = 4  # urgency at or above this puts a conversation at the top of the inbox

MAX_THREAD_TURNS = 2000


def conversation_thread(*, conversation: Conversation, limit: int = MAX_THREAD_TURNS) -> list[dict]:
    """Every turn of every session of the conversation, oldest first (the last ``limit``); each turn is
    ``{"interaction", "channel", "role", "text", "at", "staff_user_id"?, "staff_name"?}``."""
    turns: list[dict] = []
    rows = Interaction.objects.filter(conversation=conversation).order_by("started_at", "id")
    for interaction_id, channel, transcript in rows.values_list("id", "channel", "transcript").iterator(chunk_size=50):
        for turn in transcript or []:
            item = {
                "interaction": interaction_id,
                "channel": channel,
                "role": turn.get("role", ""),
                "text": turn.get("text", ""),
                "at": turn.get("at", ""),
            }
            if turn.get("role") == "staff":
                item["staff_user_id"] = turn.get("staff_user_id")
                item["staff_name"] = turn.get("staff_name", "")
            turns.append(item)
    turns.sort(key=lambda t: t["at"])
    return turns[-limit:]


def transcript_matches(query: str) -> Q:
    """A filter on ``Interaction`` rows whose transcript text matches ``query`` (web-search syntax: words,
    "quoted phrases", -excluded), served by the GIN index ``call_logs_transcript_fts``."""
    return Q(pk__in=transcript_search(query).values("pk"))


def transcript_search(query: str, *, tenant_id=None) -> QuerySet[Interaction]:
    """``Interaction`` rows (of ``tenant_id``, if given) whose transcript text matches ``query`` (web-search
    syntax), found through the GIN index ``call_logs_transcript_fts``."""
    rows = Interaction.objects.annotate(doc=TranscriptDocument("transcript")).filter(
        doc=SearchQuery(query[:200], config="english", search_type="websearch")
    )
    return rows.filter(tenant_id=tenant_id) if tenant_id is not None else rows


# --- the inbox list ------------------------------------------------------------------------------------------

INBOX_PAGE = 50


@dataclass
class InboxFilters:
    """``who``: ``all`` | ``mine`` | ``unassigned``; ``channel``; ``urgency`` (minimum 1–5); ``status``:
    ``active`` (open, not resolved: the default) | ``open`` | ``pending`` | ``resolved`` | ``closed``; ``q``: words
    from the transcripts (full-text)."""

    who: str = "all"
    channel: str = ""
    urgency: int | None = None
    status: str = "active"
    q: str = ""


def customer_label(customer: Customer, identifiers: list[CustomerIdentifier] | None = None) -> str:
    """How staff see a patient: the name they gave or staff entered, else a phone or email on file, else
    "Web visitor" — never an id."""
    if customer.display_name.strip():
        return customer.display_name.strip()
    idents = identifiers if identifiers is not None else list(customer.identifiers.all())
    for kind in (IdentifierKind.PHONE, IdentifierKind.EMAIL):
        for ident in idents:
            if ident.kind == kind:
                return ident.value
    return "Web visitor"


def _needs_human(*, tenant_id, user=None) -> Q:
    """Conversations that need a human: hand-off requested, a patient waiting for staff, assigned to ``user``, or an
    urgent session (urgency ≥ 4: the partial index ``call_logs_urgent``) — unless resolved."""
    mine = Q(handling__assignee=user) if user is not None and getattr(user, "pk", None) else Q(pk__in=[])
    urgent = Interaction.objects.filter(tenant_id=tenant_id, urgency__gte=URGENT).values("conversation_id")
    return (
        Q(handling__needs_human=True) | Q(handling__customer_waiting_since__isnull=False) | mine | Q(pk__in=urgent)
    ) & ~Q(handling__status=ConversationHandling.Status.RESOLVED)


def inbox_queryset(*, tenant_id, user=None, filters: InboxFilters | None = None) -> QuerySet[Conversation]:
    """The tenant's conversations the inbox lists with ``filters`` (unordered, not annotated; see
    :func:`inbox_page`)."""
    f = filters or InboxFilters()
    qs = Conversation.objects.filter(tenant_id=tenant_id)
    if f.status == "active":
        qs = qs.filter(status=Conversation.Status.OPEN).exclude(handling__status=ConversationHandling.Status.RESOLVED)
    elif f.status == "closed":
        qs = qs.filter(status=Conversation.Status.CLOSED)
    elif f.status in ConversationHandling.Status.values:
        if f.status == ConversationHandling.Status.OPEN:
            qs = qs.filter(Q(handling__isnull=True) | Q(handling__status=f.status), status=Conversation.Status.OPEN)
        else:
            qs = qs.filter(handling__status=f.status)
    if f.who == "mine" and user is not None:
        qs = qs.filter(handling__assignee=user)
    elif f.who == "unassigned":
        qs = qs.filter(Q(handling__isnull=True) | Q(handling__assignee__isnull=True))
    if f.channel:
        qs = qs.filter(Exists(Interaction.objects.filter(conversation=OuterRef("pk"), channel=f.channel)))
    if f.urgency:
        qs = qs.filter(
            pk__in=Interaction.objects.filter(tenant_id=tenant_id, urgency__gte=f.urgency).values("conversation_id")
        )
    if f.q.strip():
        qs = qs.filter(pk__in=transcript_search(f.q, tenant_id=tenant_id).values("conversation_id"))
    return qs


def inbox_page(*, tenant_id, user=None, filters: InboxFilters | None = None, limit: int = INBOX_PAGE) -> list[Any]:
    """One page of the inbox: the conversations needing a human first (the longest-waiting patient first), then
    the others by last activity; each annotated with ``urgency_max``, ``channels``, ``last_text``, ``last_role``.

    Two short ordered queries (needing a human, then the rest) and the annotations computed for the page only,
    so the cost does not grow with the number of conversations a filter or a search matches."""
    base = inbox_queryset(tenant_id=tenant_id, user=user, filters=filters)
    needs = _needs_human(tenant_id=tenant_id, user=user)
    first = list(
        base.filter(needs)
        .order_by(F("handling__customer_waiting_since").asc(nulls_last=True), "-last_activity_at")
        .values_list("pk", flat=True)[:limit]
    )
    rest: list = []
    if len(first) < limit:  # then ``first`` holds every conversation needing a human: skip those in Python
        # (an ``exclude(needs)`` in SQL misleads the planner's row estimates into a nested loop over the search)
        recent = base.order_by("-last_activity_at").values_list("pk", flat=True)[: limit + len(first)]
        rest = [pk for pk in recent if pk not in set(first)][: limit - len(first)]
    sessions = Interaction.objects.filter(conversation=OuterRef("pk"))
    latest = sessions.order_by("-last_activity_at")
    last_turn = KeyTransform(-1, "transcript")
    rows: dict[Any, Any] = {
        c.pk: c
        for c in Conversation.objects.filter(pk__in=[*first, *rest])
        .select_related("customer", "handling", "handling__assignee", "handling__taken_over_by")
        .prefetch_related("customer__identifiers")
        .annotate(
            urgency_max=Subquery(sessions.values("conversation").annotate(m=Max("urgency")).values("m")[:1]),
            channels=Subquery(
                sessions.values("conversation").annotate(c=ArrayAgg("channel", distinct=True)).values("c")[:1]
            ),
            last_text=Subquery(latest.annotate(t=KeyTextTransform("text", last_turn)).values("t")[:1]),
            last_role=Subquery(latest.annotate(r=KeyTextTransform("role", last_turn)).values("r")[:1]),
        )
    }
    needing = set(first)
    page = []
    for pk in [*first, *rest]:
        if pk in rows:
            rows[pk].needs = pk in needing
            page.append(rows[pk])
    return page


def inbox_rows(*, tenant_id, user=None, filters: InboxFilters | None = None, limit: int = INBOX_PAGE) -> list[dict]:
    """One page of the inbox as plain dicts for the template (see :func:`inbox_page`)."""
    rows = []
    now = timezone.now()
    for c in inbox_page(tenant_id=tenant_id, user=user, filters=filters, limit=limit):
        handling = getattr(c, "handling", None) if _has_handling(c) else None
        rows.append(
            {
                "id": c.pk,
                "name": customer_label(c.customer, list(c.customer.identifiers.all())),
                "channels": sorted(c.channels or []),
                "last_text": (c.last_text or "")[:140],
                "last_role": c.last_role or "",
                "waiting_since": handling.customer_waiting_since if handling else None,
                "urgency": c.urgency_max,
                "needs": c.needs,
                "needs_human": bool(handling and handling.needs_human),
                "assignee": _staff_name(handling.assignee) if handling and handling.assignee else "",
                "taken_over": bool(handling and handling.ai_paused_until and handling.ai_paused_until > now),
                "unread": bool(handling and handling.unread),
                "status": handling.status if handling else ConversationHandling.Status.OPEN,
                "closed": c.status == Conversation.Status.CLOSED,
                "last_activity_at": c.last_activity_at,
            }
        )
    return rows


def _has_handling(conversation: Conversation) -> bool:
    try:
        conversation.handling  # noqa: B018
    except ConversationHandling.DoesNotExist:
        return False
    return True


def _staff_name(user) -> str:
    return (user.get_full_name() or user.get_username()) if user else ""


def patient_card(*, conversation: Conversation) -> dict:
    """The patient card of the conversation view: name, identifiers (with STOP), upcoming appointments,
    escalated sessions (the incidents live in ``escalation``, which this app may not import)."""
    customer = conversation.customer
    identifiers = list(customer.identifiers.exclude(kind=IdentifierKind.COOKIE).order_by("kind", "-verified"))
    return {
        "name": customer_label(customer, identifiers),
        "identifiers": identifiers,
        "appointments": list(
            Appointment.objects.filter(
                customer=customer, status=Appointment.Status.BOOKED, starts_at__gte=timezone.now()
            ).order_by("starts_at")[:5]
        ),
        "escalated": list(
            Interaction.objects.filter(customer=customer, escalated=True)
            .order_by("-started_at")
            .values("id", "channel", "started_at", "urgency")[:5]
        ),
        "conversations": Conversation.objects.filter(customer=customer).count(),
    }


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def canned_responses_for(*, conversation: Conversation, user) -> list[tuple[str, str]]:
    """The tenant's canned responses as ``(title, text)`` with the placeholders filled in for this patient and
    staff member (plain substitution of ``{name}``: no attribute or format-spec access; unknown ones stay)."""
    name = conversation.customer.display_name.strip()
    values = {
        "patient_name": name,
        "patient_first_name": name.split(" ")[0] if name else "",
        "staff_first_name": (getattr(user, "first_name", "") or "").strip(),
        "clinic": conversation.tenant.short_name,
    }

    def fill(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    return [
        (c.title, fill(c.body))
        for c in CannedResponse.objects.filter(tenant_id=conversation.tenant_id).order_by("title")[:100]
    ]
