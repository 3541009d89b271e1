"""Authenticating the Twilio callbacks that carry no phone number (the recording status callback).

Twilio's recording status callback posts ``AccountSid``, ``CallSid`` and the ``Recording*`` parameters but
neither ``To`` nor ``From`` (https://www.twilio.com/docs/voice/twiml/record#attributes-recording-status-callback-parameters),
so :func:`channels_app.twilio_security.twilio_webhook` cannot find the tenant by our number. Here the tenant
is the one whose call has that ``CallSid`` (we stored it when the call began), and the signature is then checked
exactly as ``twilio_webhook`` does — same URL rebuild, same fail-closed rules: unknown call, tenant without a
token, AccountSid mismatch, missing or wrong signature → 403 and the view never runs.
"""

from __future__ import annotations

from channels_app.twilio_security import twilio_webhook
from conversations.models import Channel, ChannelMessage


def tenant_for_call(call_sid: str):
    """The tenant of our call ``call_sid`` (``CA…``), or None if we never saw it."""
    if not call_sid:
        return None
    row = ChannelMessage.objects.select_related("tenant").filter(channel=Channel.VOICE, provider_id=call_sid).first()
    return row.tenant if row else None


#: Decorate a view as a Twilio webhook about one of our calls: POST, CSRF-exempt, tenant by ``CallSid``,
#: signature valid; sets ``request.tenant``.
call_webhook = twilio_webhook(find_tenant=lambda post: tenant_for_call(post.get("CallSid", "")))
