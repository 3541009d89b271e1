"""Appointment confirmations and chat links, sent by channels when ``conversations`` announces them.

Best channel for a confirmation: the channel the appointment was booked on when it can carry one (SMS,
email), else SMS, else email. Only proven addresses are used: SMS goes to a *verified* phone that has not opted
out (:func:`textable_phone`), email to a verified address (:mod:`channels_app.email.confirmations`); a customer
with neither gets no confirmation (logged). Senders are registered per channel with
:func:`register_confirmation_sender` (SMS here; the email channel registers its own). Every send is keyed
``appointment:<id>:v<version>`` so a task run twice sends once, and a stale version (a newer change already
happened) sends nothing: the newer change sends its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task
from django.utils import translation
from django.utils.translation import gettext as _

from conversations.agent.dates import say_when
from conversations.language import language_of
from conversations.models import Appointment, Interaction
from identity.models import CustomerIdentifier, IdentifierKind
from providers import PROVIDER_RETRY

logger = logging.getLogger(__name__)

ORDER = ["sms", "email"]
_SENDERS: dict[str, Callable[[Appointment, str], bool]] = {}


def register_confirmation_sender(channel: str, sender: Callable[[Appointment, str], bool]) -> None:
    """Register ``sender(appointment, change) -> sent?`` for ``channel``; it returns False when it cannot reach
    the customer (no address, opted out) so the next channel is tried."""
    _SENDERS[channel] = sender


_COMPANIONS: dict[str, Callable[[Appointment, str], bool]] = {}


def register_confirmation_companion(channel: str, sender: Callable[[Appointment, str], bool]) -> None:
    """Register a ``sender`` run for every change in addition to the best channel (email: it carries the .ics
    file, so it goes out whenever the customer has an address); it returns False when it cannot reach them."""
    _COMPANIONS[channel] = sender


def confirmation_text(appointment: Appointment, change: str) -> str:
    """Short, PHI-minimal text: clinic name, day and time; no reason for the visit. In the patient's language."""
    tenant = appointment.tenant
    with translation.override(language_of(appointment.customer)):
        when = say_when(appointment.starts_at.astimezone(tenant.tzinfo))
        if change == "cancelled":
            text = _("{clinic}: your appointment on {when} is cancelled. Reply to book again.")
        elif change == "rescheduled":
            text = _("{clinic}: your appointment has moved to {when}. Reply to change or cancel.")
        else:
            text = _("{clinic}: your appointment is confirmed for {when}. Reply to change or cancel.")
        return text.format(clinic=tenant.short_name, when=when)


def textable_phone(*, tenant, customer) -> str | None:
    """The customer's oldest *verified* phone (E.164) that has not opted out of SMS, or None.

    Verified means proven: the number an SMS or a call came from, or one whose one-time chat code was typed
    back (:mod:`channels_app.chat.verification`). A number merely typed in chat or an email is never texted —
    the same rule as the agent's tools (``conversations.agent.tools._phone``): appointment details and chat
    links must not reach a stranger's phone, and we must not be a way to text arbitrary numbers.
    """
    return (
        CustomerIdentifier.objects.filter(
            tenant=tenant, customer=customer, kind=IdentifierKind.PHONE, verified=True, sms_opted_out_at__isnull=True
        )
        .order_by("created_at", "pk")
        .values_list("value", flat=True)
        .first()
    )


def _sms_sender(appointment: Appointment, change: str) -> bool:
    from channels_app.sms.services import sms_send

    phone = textable_phone(tenant=appointment.tenant, customer=appointment.customer)
    if not phone:
        logger.info("appointment %s: no verified phone to text the confirmation to", appointment.pk)
        return False
    sms_send(
        tenant=appointment.tenant,
        customer=appointment.customer,
        to=phone,
        body=confirmation_text(appointment, change),
        idempotency_key=f"appointment:{appointment.pk}:v{appointment.version}",
    )
    return True


register_confirmation_sender("sms", _sms_sender)


def appointment_send_confirmation(*, appointment_id, change: str, version: int) -> str | None:
    """Send the confirmation of one appointment change on the best channel; returns the channel or None."""
    appointment = Appointment.objects.select_related("tenant", "customer").filter(pk=appointment_id).first()
    if appointment is None or appointment.version != version:
        return None
    order = ([appointment.booked_via] if appointment.booked_via in ORDER else []) + ORDER
    chosen = None
    for channel in dict.fromkeys(order):
        sender = _SENDERS.get(channel)
        if sender and sender(appointment, change):
            chosen = channel
            break
    for channel, companion in _COMPANIONS.items():
        if channel != chosen and companion(appointment, change):
            chosen = chosen or channel
    if chosen is None:
        logger.info("no channel to confirm appointment %s", appointment.pk)
    return chosen


def chat_link_send(*, interaction_id, ref: str = "") -> bool:
    """Text the customer of ``interaction_id`` a signed link to the chat; False (nothing sent, logged) if they
    have no verified phone that has not opted out (:func:`textable_phone`)."""
    from channels_app.chat.links import chat_link_url
    from channels_app.sms.services import sms_send

    interaction = Interaction.objects.select_related("tenant", "customer").get(pk=interaction_id)
    phone = textable_phone(tenant=interaction.tenant, customer=interaction.customer)
    if not phone:
        logger.info("chat link for interaction %s not sent: no verified phone", interaction_id)
        return False
    url = chat_link_url(customer=interaction.customer)
    sms_send(
        tenant=interaction.tenant,
        customer=interaction.customer,
        to=phone,
        body=f"{interaction.tenant.short_name}: continue our conversation in chat: {url}",
        idempotency_key=f"chat-link:{interaction_id}:{ref}",
    )
    return True


@shared_task(acks_late=True, **PROVIDER_RETRY)
def appointment_confirm_task(appointment_id: str, change: str, version: int) -> None:
    """Send one appointment confirmation (idempotent: keyed by appointment and version)."""
    appointment_send_confirmation(appointment_id=appointment_id, change=change, version=version)


@shared_task(acks_late=True, **PROVIDER_RETRY)
def chat_link_task(interaction_id: str, ref: str) -> None:
    """Text a chat link (idempotent: keyed by interaction and request ref)."""
    chat_link_send(interaction_id=interaction_id, ref=ref)
