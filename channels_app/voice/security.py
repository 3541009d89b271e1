"""Finding the tenant of a Twilio voice webhook about one call, before its signature is checked.

Two kinds of callbacks need more than "the tenant owning ``To``":

- Callbacks that carry no phone number (the recording status callback). Twilio's recording status callback posts
  ``AccountSid``, ``CallSid`` and the ``Recording*`` parameters but neither ``To`` nor ``From``
  (https://www.twilio.com/docs/voice/twiml/record#attributes-recording-status-callback-parameters), so the tenant
  is the one whose call has that ``CallSid`` (we stored it when the call began): :data:`call_webhook`.
- Requests about a call in progress (Gather actions, status callbacks, the answer of a callback we placed, dial
  results, voicemail). Our number is ``To`` of an inbound call but ``From`` of a call we placed (``Direction``
  ``outbound-api`` / ``outbound-dial``); the other end is the patient's number, which must never decide the
  tenant (a tenant that registered a patient's number as its own would otherwise receive that patient's call
  webhooks). :data:`voice_webhook` looks at our end only, by direction (as
  :func:`channels_app.voice.transfer.clinic_number` does), and, when that is not one of our numbers, at the
  tenant of the stored ``CallSid``.

Either way the signature is then checked exactly as :func:`providers.twilio_security.twilio_webhook` does —
same URL rebuild, same fail-closed rules: no tenant, tenant without a token, AccountSid mismatch, missing or wrong
signature → 403 and the view never runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from conversations.models import Channel, ChannelMessage
from providers.twilio_security import tenant_for_numbers, twilio_webhook


def tenant_for_call(call_sid: str):
    """The tenant of our call ``call_sid`` (``CA…``), or None if we never saw it."""
    if not call_sid:
        return None
    row = ChannelMessage.objects.select_related("tenant").filter(channel=Channel.VOICE, provider_id=call_sid).first()
    return row.tenant if row else None


def our_end(params: Mapping[str, str]) -> str:
    """Our number on a call (E.164 as Twilio sent it): ``From`` when ``Direction`` starts with ``outbound`` (a
    call we placed, or a ``<Dial>`` leg), else ``To`` (an inbound call; also when ``Direction`` is missing)."""
    outbound = (params.get("Direction") or "inbound").startswith("outbound")
    return params.get("From" if outbound else "To", "") or ""


def tenant_for_call_webhook(params: Mapping[str, str]):
    """The tenant a webhook about a call belongs to: the owner of our end of the call (:func:`our_end`), else the
    tenant of the stored ``CallSid``; None if neither is known. The patient's end is never consulted."""
    return tenant_for_numbers(our_end(params)) or tenant_for_call(params.get("CallSid", ""))


#: Decorate a view as a Twilio webhook about one of our calls: POST, CSRF-exempt, tenant by ``CallSid``,
#: signature valid; sets ``request.tenant``.
call_webhook = twilio_webhook(find_tenant=lambda post: tenant_for_call(post.get("CallSid", "")))

#: Decorate a view as a Twilio webhook about a call in progress (inbound or placed by us): tenant by our end of
#: the call, else by ``CallSid`` (:func:`tenant_for_call_webhook`), signature valid; sets ``request.tenant``.
voice_webhook = twilio_webhook(find_tenant=tenant_for_call_webhook)
