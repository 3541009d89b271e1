"""Public pages and Twilio webhooks of escalation.

- ``/a/<token>``: the acknowledge link. GET shows a confirm page and changes nothing (link scanners and
  previewers GET links); POST (CSRF-protected form) acknowledges.
- ``/twilio/escalation/call/<attempt>/`` and ``…/gather/``: the page call's prompt (``<Gather numDigits="1">``)
  and its keypress; ``/twilio/escalation/status/<attempt>/``: status callbacks of page SMS and calls. All are
  signed Twilio webhooks (``twilio_webhook``; the tenant is found by ``From``, our number, since we placed
  them) and an attempt of another tenant answers 404.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

from channels_app.twilio_security import twiml_response, twilio_webhook
from escalation.models import EscalationSettings, Incident, NotificationAttempt
from escalation.services import AckOutcome, ack_by_keypress, ack_by_link, ack_link_inspect, attempt_status_update
from escalation.services.messages import call_hangup_twiml, call_prompt_twiml, call_simple_twiml

ACK_STATUS = {AckOutcome.CONFIRM: 200, AckOutcome.ACKNOWLEDGED: 200, AckOutcome.ALREADY: 200,
              AckOutcome.EXPIRED: 410, AckOutcome.USED: 410, AckOutcome.CLOSED: 410, AckOutcome.INVALID: 404}
MAX_PROMPT_ROUNDS = 2


@never_cache
@csrf_protect
@ensure_csrf_cookie
@require_http_methods(["GET", "POST"])
def ack(request, token: str):
    """GET: confirm page; POST: acknowledge. Statuses: 200 ok / already, 410 expired or used, 404 invalid."""
    if request.method == "POST":
        result = ack_by_link(raw=token)
    else:
        result = ack_link_inspect(raw=token)
    incident = result.incident if result.outcome is not AckOutcome.INVALID else None
    context = {"outcome": result.outcome.value, "incident": incident,
               "clinic": incident.tenant.short_name if incident else ""}
    response = render(request, "escalation/ack.html", context, status=ACK_STATUS[result.outcome])
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response




def _attempt(request, attempt_id: int) -> NotificationAttempt:
    attempt = (NotificationAttempt.objects.select_related("incident", "responder", "tenant")
               .filter(pk=attempt_id, tenant=request.tenant).first())
    if attempt is None:
        raise Http404("no such attempt")
    sid = request.POST.get("CallSid") or request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""
    # a duplicate try's call (``extra_sids``) is still this attempt's: its responder may press 1 on it
    if attempt.provider_sid and sid and sid != attempt.provider_sid and sid not in attempt.extra_sids:
        raise Http404("SID does not match the attempt")
    return attempt


def _round(request) -> int:
    value = request.GET.get("round", "1")
    return min(int(value), MAX_PROMPT_ROUNDS) if value.isdigit() else 1


@twilio_webhook(tenant_fields=("From",))
def call_prompt(request, attempt_id: int):
    """TwiML when the page call is answered: the prompt, or "already acknowledged", or hang up on machines."""
    attempt = _attempt(request, attempt_id)
    if request.POST.get("AnsweredBy", "").startswith("machine") or request.POST.get("AnsweredBy") == "fax":
        return twiml_response(call_hangup_twiml())  # voicemail is never an acknowledgement; leave no details
    if attempt.incident.status != Incident.Status.TRIGGERED:
        return twiml_response(call_simple_twiml(f"This is {attempt.tenant.short_name}. This urgent page was already "
                                       "handled. Thank you. Goodbye."))
    round_ = _round(request)
    config = EscalationSettings.objects.filter(tenant=attempt.tenant).first()
    return twiml_response(call_prompt_twiml(tenant=attempt.tenant, config=config, attempt_id=attempt.pk, round_=round_))


@twilio_webhook(tenant_fields=("From",))
def call_gather(request, attempt_id: int):
    """The digit pressed: ``1`` acknowledges; anything else re-prompts once, then says goodbye."""
    attempt = _attempt(request, attempt_id)
    result = ack_by_keypress(attempt=attempt, digits=request.POST.get("Digits", ""))
    short = attempt.tenant.short_name
    if result.outcome in (AckOutcome.ACKNOWLEDGED, AckOutcome.ALREADY):
        return twiml_response(call_simple_twiml(f"Acknowledged. Thank you. Please call {short} back now. Goodbye."))
    if result.outcome is AckOutcome.CLOSED:
        return twiml_response(call_simple_twiml("This page is closed. Goodbye."))
    round_ = _round(request)
    if round_ >= MAX_PROMPT_ROUNDS:
        return twiml_response(call_simple_twiml("Not acknowledged. Goodbye."))
    config = EscalationSettings.objects.filter(tenant=attempt.tenant).first()
    return twiml_response(call_prompt_twiml(tenant=attempt.tenant, config=config, attempt_id=attempt.pk, round_=round_ + 1))


@twilio_webhook(tenant_fields=("From",))
def status_callback(request, attempt_id: int):
    """Twilio status callback of a page SMS (``MessageStatus``) or call (``CallStatus``): forward only."""
    attempt = _attempt(request, attempt_id)
    status = request.POST.get("MessageStatus") or request.POST.get("SmsStatus") or request.POST.get("CallStatus")
    if not status:
        return HttpResponse("MessageStatus or CallStatus is required", status=400)
    sid = request.POST.get("CallSid") or request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""
    attempt_status_update(attempt=attempt, provider_status=status, sid=sid,
                          error_code=request.POST.get("ErrorCode", ""))
    return HttpResponse(status=204)
