"""Emergencies in opening hours and urgent messages: alert the clinic's staff instead of paging.

Paging is for after hours (the on-call schedule). In opening hours an emergency — a patient already told to
call 911 by the safety reply — must still be seen by a human within minutes: a staff notification marked
"emergency" (top of admin), plus, at once, an SMS to the clinic's on-duty line (``AgentSettings.handoff_number``,
the human line the voice agent transfers to) and an email to the clinic's active staff; the conversation goes to
the top of the staff inbox (needs a human). An urgent message
(not an emergency) becomes an "urgent" notification: the callback queue, no SMS. No patient data leaves in
the SMS or the email: the clinic's name and the admin link only.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from conversations.models import AgentSettings, Interaction, StaffNotification

logger = logging.getLogger(__name__)

SMS_TEXT = "{clinic}: URGENT — a patient message needs a clinician now (possible emergency). Open: {link}"


def _notify(*, interaction: Interaction, kind: str, summary: str) -> tuple[StaffNotification, bool]:
    """Open the staff notification (``staff_notification_open``) and, when it is new, put the conversation at the
    top of the staff inbox — both in one transaction."""
    from conversations.agent.services import staff_notification_open
    from conversations.inbox.services import conversation_flag_needs_human

    with transaction.atomic():
        notice, created = staff_notification_open(interaction=interaction, kind=kind, summary=summary)
        if created:
            conversation_flag_needs_human(conversation=interaction.conversation, reason=summary)
    return notice, created


def staff_alert_emergency(*, interaction: Interaction, reason: str) -> StaffNotification:
    """Record an "emergency" staff notification for ``interaction`` (once while open) and, when it is new, queue
    :func:`staff_alert_send` on commit. ``reason`` is a non-PHI label such as ``"red flag: stroke"``."""
    notice, created = _notify(
        interaction=interaction,
        kind=StaffNotification.Kind.EMERGENCY,
        summary=f"Possible emergency in opening hours ({reason}). The patient was told to call 911; call them now.",
    )
    if created:
        from escalation.tasks import staff_alert_send_task

        notice_id = notice.pk
        transaction.on_commit(lambda: staff_alert_send_task.delay(notice_id), robust=True)
    return notice


def staff_alert_urgent(*, interaction: Interaction, reason: str) -> StaffNotification:
    """Put ``interaction`` in the staff callback queue (an "urgent" notification, once while open)."""
    notice, _ = _notify(
        interaction=interaction,
        kind=StaffNotification.Kind.URGENT,
        summary=f"Urgent message ({reason}): call the patient back today.",
    )
    return notice


def staff_alert_send(*, notification_id: int) -> int:
    """Text the on-duty line and email the clinic's active staff about an emergency notification, at most once
    (``alerted_at`` is claimed before sending: a crash loses the SMS rather than doubling it; the notification
    itself stays at the top of admin). Returns the number of recipients."""
    from django.core.mail import send_mail

    from identity.models import TenantMembership, TenantPhoneNumber
    from providers.sms import get_sms_backend

    claimed = StaffNotification.objects.filter(pk=notification_id, alerted_at__isnull=True).update(
        alerted_at=timezone.now()
    )
    if not claimed:
        return 0
    notice = StaffNotification.objects.select_related("tenant").get(pk=notification_id)
    tenant = notice.tenant
    link = f"{settings.PUBLIC_BASE_URL}/admin/conversations/staffnotification/{notice.pk}/change/"
    sent = 0
    on_duty = AgentSettings.objects.filter(tenant=tenant).values_list("handoff_number", flat=True).first()
    sender = TenantPhoneNumber.objects.filter(tenant=tenant).order_by("id").values_list("number", flat=True).first()
    if on_duty and sender:
        try:
            get_sms_backend().send(
                tenant=tenant,
                from_=sender,
                to=on_duty,
                body=SMS_TEXT.format(clinic=tenant.short_name, link=link),
            )
            sent += 1
        except Exception:
            logger.exception("staff alert %s: SMS to the on-duty line failed", notice.pk)
    emails = list(
        TenantMembership.objects.filter(tenant=tenant, user__is_active=True)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if emails:
        try:
            send_mail(
                f"[{tenant.short_name}] URGENT: possible emergency in a patient message",
                f"A patient message was triaged as a possible emergency (the patient was told to call 911). "
                f"Please call them now: {link}",
                None,
                emails,
            )
            sent += len(emails)
        except OSError:
            logger.exception("staff alert %s: email failed", notice.pk)
    if not sent:
        logger.error("staff alert %s: tenant %s has no on-duty number and no staff email", notice.pk, tenant.slug)
    return sent
