"""Twilio Messaging webhooks: ``POST /twilio/sms/`` (inbound) and ``POST /twilio/sms/status/`` (callbacks)."""

from django.conf import settings
from django.http import HttpResponse, HttpResponseBadRequest
from twilio.twiml.messaging_response import MessagingResponse

from channels_app.sms.intake import sms_accept
from channels_app.sms.services import InvalidSms, sms_receive
from conversations.models import Channel
from conversations.services import message_status_update
from providers.twilio_security import twilio_webhook, twiml_response


@twilio_webhook(tenant_fields=("To",))
def sms_inbound(request):
    """Accept the inbound message (stored, its recording queued on its lane: :mod:`channels_app.sms.intake`), or
    record it here with ``SMS_INTAKE_INLINE``; the reply is sent asynchronously through the SMS provider."""
    receive = sms_receive if settings.SMS_INTAKE_INLINE else sms_accept
    try:
        receive(tenant=request.tenant, params=request.POST)
    except InvalidSms as exc:
        return HttpResponseBadRequest(str(exc))
    return twiml_response(MessagingResponse())


@twilio_webhook(tenant_fields=("From", "To"))
def sms_status(request):
    """Move an outbound message's status forward (queued → sent → delivered; never backwards)."""
    sid = request.POST.get("MessageSid") or request.POST.get("SmsSid")
    status = request.POST.get("MessageStatus") or request.POST.get("SmsStatus")
    if not sid or not status:
        return HttpResponseBadRequest("MessageSid and MessageStatus are required")
    message_status_update(
        channel=Channel.SMS,
        provider_id=sid,
        status=status,
        error_code=request.POST.get("ErrorCode", ""),
        error_message=request.POST.get("ErrorMessage", ""),
        tenant=request.tenant,
    )
    return HttpResponse(status=204)
