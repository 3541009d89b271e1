"""Twilio Voice webhooks (all signed; see ``providers.twilio_security`` and ``channels_app.voice.security``).

The incoming-call route finds the tenant by ``To``; routes about a call in progress (which may be a call we
placed: a callback) find it by our end of the call — ``To`` inbound, ``From`` outbound, never the patient's
number — else by the stored ``CallSid`` (:data:`channels_app.voice.security.voice_webhook`). TwiML answers are
``text/xml``; pure callbacks answer 204.
"""

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.utils.module_loading import import_string

from channels_app.voice import agent, callback, lifecycle, transfer, voicemail
from channels_app.voice.security import call_webhook, voice_webhook
from providers.twilio_security import twilio_webhook, twiml_response


def _query_int(request, name: str, default: int) -> int:
    try:
        return max(1, int(request.GET.get(name, default)))
    except (TypeError, ValueError):
        return default


@twilio_webhook(tenant_fields=("To",))
def voice_inbound(request):
    """An incoming call: open the call (once per CallSid) and greet. Handlers in ``settings.VOICE_INBOUND_HANDLERS``
    (``f(tenant, params) -> TwiML | None``) may answer it first — e.g. an on-call clinician's own call."""
    for path in getattr(settings, "VOICE_INBOUND_HANDLERS", []):
        if (claimed := import_string(path)(request.tenant, request.POST)) is not None:
            return twiml_response(claimed)
    try:
        return twiml_response(agent.call_answer(tenant=request.tenant, params=request.POST))
    except agent.InvalidCall as exc:
        return HttpResponseBadRequest(str(exc))


@voice_webhook
def voice_gather(request):
    """The caller's speech for turn ``?turn=N``: answer through the engine (no lock held while it thinks). A
    replay of turn N, or our own ``<Redirect>`` back here, gets the stored reply once the turn is answered and
    a short hold (``<Pause>`` + ``<Redirect>``) until then."""
    turn = _query_int(request, "turn", 1)
    return twiml_response(agent.call_turn(tenant=request.tenant, params=request.POST, turn=turn))


@voice_webhook
def voice_no_input(request):
    """A Gather heard nothing (``?turn=N&n=K``): re-prompt, then voicemail, then goodbye."""
    return twiml_response(
        agent.call_no_input(
            tenant=request.tenant,
            params=request.POST,
            turn=_query_int(request, "turn", 1),
            attempt=_query_int(request, "n", 1),
        )
    )


@voice_webhook
def voice_status(request):
    """Call status callback: forward only; the end closes the call's row."""
    if not request.POST.get("CallSid") or not request.POST.get("CallStatus"):
        return HttpResponseBadRequest("CallSid and CallStatus are required")
    lifecycle.call_status_update(tenant=request.tenant, params=request.POST)
    return HttpResponse(status=204)


@voice_webhook
def voice_callback_answer(request, callback_request_id: int):
    """A callback call we placed was answered (``AnsweredBy`` from answering-machine detection): talk to a
    person, leave a generic message on a machine. Another tenant's request id answers 404."""
    document = callback.callback_answered(
        tenant=request.tenant, callback_request_id=callback_request_id, params=request.POST
    )
    if document is None:
        raise Http404("no such callback request")
    return twiml_response(document)


@voice_webhook
def voice_dial_result(request):
    """The ``<Dial action>`` of a transfer to the front desk (``DialCallStatus``): hang up when answered,
    otherwise record a voicemail. A replay gets the same TwiML."""
    return twiml_response(transfer.dial_result(tenant=request.tenant, params=request.POST))


@voice_webhook
def voice_voicemail(request):
    """Straight to voicemail (number fallback, unanswered ``<Dial>``)."""
    try:
        return twiml_response(agent.call_voicemail(tenant=request.tenant, params=request.POST))
    except agent.InvalidCall as exc:
        return HttpResponseBadRequest(str(exc))


@voice_webhook
def voice_voicemail_done(request):
    """The ``<Record>`` action: thank and hang up."""
    return twiml_response(agent.call_voicemail_done(tenant=request.tenant, params=request.POST))


@call_webhook
def voice_recording(request):
    """Recording status callback (no To/From in it: the tenant is the call's)."""
    voicemail.recording_received(tenant=request.tenant, params=request.POST)
    return HttpResponse(status=204)


@call_webhook
def voice_transcription(request):
    """Twilio's transcription callback: file the voicemail."""
    voicemail.transcription_received(tenant=request.tenant, params=request.POST)
    return HttpResponse(status=204)
