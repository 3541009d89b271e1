"""What leaves for a CRM: a customer's contact keys and an interaction's summary — never transcript text.

The activity carries channel, direction, times, intent, sentiment, lead score, satisfaction (CSAT 1–5),
escalated and a link to the interaction in our admin (staff sign in to read the transcript there).
"""

from __future__ import annotations

from django.conf import settings

from conversations.models import Interaction
from crm.clients.base import ActivityData, ContactData
from identity.models import Customer, CustomerIdentifier

#: Our summary fields a tenant may copy into custom CRM fields (``CrmConnection.field_map`` keys).
MAPPABLE_FIELDS = ("channel", "direction", "intent", "sentiment", "lead_score", "satisfaction", "escalated")


def surviving_customer(customer: Customer) -> Customer:
    """The customer a merged tombstone points to (at most 10 hops), else ``customer`` itself."""
    for _ in range(10):
        if not customer.merged_into_id:
            break
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


def contact_data(customer: Customer) -> ContactData:
    """Phone (E.164) and email (lower-case) from the customer's identifiers, verified and newest first."""
    values: dict[str, str] = {}
    identifiers = CustomerIdentifier.objects.filter(customer=customer, kind__in=["phone", "email"]).order_by(
        "-verified", "-created_at"
    )
    for kind, value in identifiers.values_list("kind", "value"):
        values.setdefault(kind, value)
    first, _, last = (customer.display_name or "").strip().rpartition(" ")
    if not first:  # one word: that is the last name (Salesforce and Zoho require one)
        first, last = "", last
    return ContactData(
        customer_id=str(customer.pk),
        phone=values.get("phone", ""),
        email=values.get("email", ""),
        first_name=first[:80],
        last_name=(last or "Patient")[:80],
    )


def admin_url(interaction: Interaction) -> str:
    """The interaction's page in our admin (sign-in required; the transcript is read there, audited)."""
    return f"{settings.PUBLIC_BASE_URL}/admin/conversations/interaction/{interaction.pk}/change/"


def summary_fields(interaction: Interaction) -> dict:
    """The enriched summary by our field names (JSON-safe values; None when not scored)."""
    return {
        "channel": interaction.channel,
        "direction": interaction.direction,
        "intent": interaction.intent or None,
        "sentiment": float(interaction.sentiment) if interaction.sentiment is not None else None,
        "lead_score": interaction.lead_score,
        "satisfaction": interaction.satisfaction,
        "escalated": interaction.escalated,
    }


def activity_data(interaction: Interaction, *, field_map: dict | None = None) -> ActivityData:
    """The activity for ``interaction``: a subject line, a plain summary body and the mapped custom fields."""
    fields = summary_fields(interaction)
    channel = interaction.get_channel_display()
    subject = f"{channel} ({interaction.get_direction_display().lower()}) via callsphere"
    lines = [
        f"Channel: {channel}, {interaction.get_direction_display().lower()}",
        f"Started: {interaction.started_at.isoformat()}",
        f"Ended: {interaction.ended_at.isoformat() if interaction.ended_at else 'still open'}",
        f"Intent: {fields['intent'] or 'unknown'}",
        f"Sentiment: {'n/a' if fields['sentiment'] is None else format(fields['sentiment'], '+.2f')} (−1..1)",
        f"Lead score: {'n/a' if fields['lead_score'] is None else fields['lead_score']} / 100",
        f"Satisfaction (CSAT): {'n/a' if fields['satisfaction'] is None else fields['satisfaction']} / 5",
        f"Escalated: {'yes' if fields['escalated'] else 'no'}",
        f"Transcript (staff sign-in): {admin_url(interaction)}",
    ]
    custom = {
        str(remote): fields[ours]
        for ours, remote in (field_map or {}).items()
        if ours in MAPPABLE_FIELDS and isinstance(remote, str) and remote
    }
    return ActivityData(
        interaction_id=str(interaction.pk),
        subject=subject,
        body="\n".join(lines),
        channel=interaction.channel,
        direction=interaction.direction,
        started_at=interaction.started_at,
        ended_at=interaction.ended_at,
        admin_url=admin_url(interaction),
        fields=fields,
        custom=custom,
    )
