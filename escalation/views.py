"""Public pages and Twilio webhooks of escalation.

- ``/a/<token>``: the acknowledge link. GET shows a confirm page and changes nothing (link scanners and
  previewers GET links); POST (the confirm page's form) acknowledges. The link's token is the credential, not a
  cookie: see :func:`ack` for why the POST is CSRF-exempt.
- ``/healthz/escalation``: the pipeline's dead-man's switch, for an external uptime monitor.
- ``/twilio/escalation/call/<attempt>/`` and ``…/gather/``: the page call's prompt (``<Gather numDigits="1">``;
  the ``Url`` the call was placed with, requested with ``AnsweredBy`` once answering-machine detection decided)
  and its keypress; ``/twilio/escalation/status/<attempt>/``: status callbacks of page SMS and calls. All are
  signed Twilio webhooks (``twilio_webhook``; the tenant is found by ``From``, our number, since we placed
  them) and an attempt of another tenant answers 404.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from escalation.models import EscalationSettings, Incident, NotificationAttempt
from escalation.services import (
    AckOutcome,
    ack_by_keypress,
    ack_by_link,
    ack_form_nonce,
    ack_form_nonce_valid,
    ack_link_inspect,
    attempt_answered_by_machine,
    attempt_status_update,
)
from escalation.services.messages import (
    call_acknowledged_text,
    call_colleague_acknowledged_text,
    call_hangup_twiml,
    call_prompt_twiml,
    call_simple_twiml,
    call_unacknowledged_text,
)
from escalation.services.portal import COOKIE as PORTAL_COOKIE
from escalation.services.portal import (
    Gate,
    portal_call_patient,
    portal_code_send,
    portal_code_verify,
    portal_cookie,
    portal_open,
    portal_resolve,
    portal_seconds_left,
    portal_view,
)
from escalation.services.responders import page_call_connect, responder_call_key
from providers.twilio_security import twilio_webhook, twiml_response

ACK_STATUS = {
    AckOutcome.CONFIRM: 200,
    AckOutcome.ACKNOWLEDGED: 200,
    AckOutcome.ALREADY: 200,
    AckOutcome.EXPIRED: 410,
    AckOutcome.USED: 410,
    AckOutcome.CLOSED: 410,
    AckOutcome.INVALID: 404,
}
MAX_PROMPT_ROUNDS = 2


@never_cache
@csrf_exempt
@require_http_methods(["GET", "POST"])
def ack(request, token: str):
    """GET: confirm page (changes nothing); POST: acknowledge. 200 ok / already, 400 stale form (the confirm
    page again), 410 expired or used, 404 invalid.

    Why the POST is CSRF-exempt, and why that is safe: the link is opened from outside (an SMS app, its in-app
    browser, a link preview), and the page sends ``Referrer-Policy: no-referrer`` so the secret path never leaks
    onward; browsers then send ``Origin: null`` with the form, which Django's Origin check rejects. CSRF
    is the abuse of *ambient* authority — credentials a browser attaches on its own (cookies, HTTP auth). This
    view has none: it reads no session or cookie and sets none; what authorises the POST is the secret in the
    URL itself, a single-use token whose HMAC binds tenant, incident, attempt and responder
    (``escalation.services.messages``). A cross-site page can only forge this POST if it already knows the
    token, and then it could acknowledge by itself anyway. :func:`~escalation.services.acks.ack_by_link`
    re-validates the token under ``select_for_update`` and consumes it in the same transaction, so a replay or a
    double tap acknowledges at most once. The form also carries a nonce (signed, bound to this token, 1 h) so a
    POST counts only as a submission of the confirm page we rendered: a client that POSTs to a bare link acks
    nothing.
    """
    if request.method == "POST" and ack_form_nonce_valid(raw=token, nonce=request.POST.get("nonce", "")):
        result = ack_by_link(raw=token)
        status = ACK_STATUS[result.outcome]
    else:
        result = ack_link_inspect(raw=token)
        status = ACK_STATUS[result.outcome]
        if request.method == "POST" and result.outcome is AckOutcome.CONFIRM:
            status = 400  # a stale or missing nonce: nothing acknowledged, the confirm page again
    incident = result.incident if result.outcome is not AckOutcome.INVALID else None
    context = {
        "outcome": result.outcome.value,
        "incident": incident,
        "clinic": incident.tenant.short_name if incident else "",
        "nonce": ack_form_nonce(raw=token) if result.outcome is AckOutcome.CONFIRM else "",
        "portal_url": reverse("escalation-portal", args=[token]),
    }
    response = render(request, "escalation/ack.html", context, status=status)
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


def _meta(request) -> dict:
    return {"ip": request.META.get("REMOTE_ADDR", ""), "user_agent": request.META.get("HTTP_USER_AGENT", "")}


PORTAL_STATUS = {Gate.OPEN: 200, Gate.PROVE: 200, Gate.NOT_ACKED: 403, Gate.EXPIRED: 410, Gate.INVALID: 404}


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def portal(request, token: str):
    """The responder portal (``escalation.services.portal``): no PHI until the link's responder proved it is them
    (a texted code or their staff login). Unlike the ack POST, these forms act on a cookie (the verified code),
    i.e. ambient authority, so they are CSRF-protected; the page's ``Referrer-Policy: same-origin`` keeps the
    secret path from other sites while the browser still sends a real ``Origin`` to us."""
    p = portal_open(raw=token, cookie=request.COOKIES.get(PORTAL_COOKIE, ""), user=request.user)
    meta = _meta(request)
    incident = p.incident if p.gate is not Gate.INVALID else None
    context: dict = {
        "gate": p.gate.value,
        "clinic": incident.tenant.short_name if incident else "",
        "ack_url": reverse("escalation-ack", args=[token]),
    }
    action = request.POST.get("action", "") if request.method == "POST" else ""
    if p.gate is Gate.PROVE and action == "send":
        context["sent"] = portal_code_send(portal=p, meta=meta)
        context["code_form"] = True
    elif p.gate is Gate.PROVE and action == "verify":
        if p.token is not None and portal_code_verify(portal=p, code=request.POST.get("code", ""), meta=meta):
            redirect = HttpResponseRedirect(request.path)
            redirect.set_cookie(
                PORTAL_COOKIE,
                portal_cookie(p.token),
                max_age=portal_seconds_left(p.token),
                path=request.path,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
            return redirect
        context.update(code_form=True, error="That code is wrong or has expired.")
    elif p.gate is Gate.OPEN and action == "call":
        context["called"] = bool(portal_call_patient(portal=p, meta=meta, user=request.user))
        context["call_tried"] = True
    elif p.gate is Gate.OPEN and action == "resolve":
        portal_resolve(portal=p, note=request.POST.get("note", ""), meta=meta, user=request.user)
    if p.gate is Gate.OPEN:
        context.update(portal_view(portal=p, meta=meta, user=request.user))
    response = render(request, "escalation/portal.html", context, status=PORTAL_STATUS[p.gate])
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex"
    return response


@never_cache
@require_http_methods(["GET", "HEAD"])
def pipeline_healthz(request):
    """200 while beat's auditor and the escalation-queue canary both beat within ``ESCALATION_HEARTBEAT_MAX_AGE``
    seconds (default 30), else 503 — and the check itself opens the outage and texts the admins once
    (:func:`~escalation.services.heartbeat.pipeline_watch`). JSON: ``ok``, ``stale``, ``beats`` (age and
    canary queue lag in seconds), ``outage_since``. No tenant data."""
    from escalation.services.heartbeat import pipeline_watch

    health = pipeline_watch()
    beats = {source: (None if b is None else {**b, "at": b["at"].isoformat()}) for source, b in health.beats.items()}
    body = {
        "ok": health.ok,
        "max_age_seconds": health.max_age_seconds,
        "stale": health.stale,
        "beats": beats,
        "outage_since": health.outage_since.isoformat() if health.outage_since else None,
    }
    return JsonResponse(body, status=200 if health.ok else 503)


def _attempt(request, attempt_id: int) -> NotificationAttempt:
    attempt = (
        NotificationAttempt.objects.select_related("incident", "responder", "tenant")
        .filter(pk=attempt_id, tenant=request.tenant)
        .first()
    )
    if attempt is None:
        raise Http404("no such attempt")
    sid = _sid(request)
    # a duplicate try's call (``extra_sids``) is still this attempt's: its responder may press 1 on it
    if attempt.provider_sid and sid and sid != attempt.provider_sid and sid not in attempt.extra_sids:
        raise Http404("SID does not match the attempt")
    return attempt


def _sid(request) -> str:
    return request.POST.get("CallSid") or request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""


def _not_paging_text(attempt: NotificationAttempt) -> str:
    """What a page call says once its incident stopped paging (no PHI: the clinic's name and number only):
    acknowledged by this responder → call back; by someone else → nothing to do; the ladder ran out
    (``unacknowledged``) → nobody has acknowledged, call the clinic now."""
    incident = attempt.incident
    if incident.status == Incident.Status.ACKNOWLEDGED:
        if incident.acknowledged_by_id == attempt.responder_id:
            return call_acknowledged_text(attempt.tenant)
        return call_colleague_acknowledged_text(attempt.tenant)
    config = EscalationSettings.objects.filter(tenant=attempt.tenant).first()
    return call_unacknowledged_text(attempt.tenant, config)


def _round(request) -> int:
    value = request.GET.get("round", "1")
    return min(int(value), MAX_PROMPT_ROUNDS) if value.isdigit() else 1


@twilio_webhook(tenant_fields=("From",))
def call_prompt(request, attempt_id: int):
    """TwiML when the page call is answered: the prompt; or, once the incident stopped paging, what happened
    (:func:`_not_paging_text`); or, for an answering machine or fax, a bare hang-up (no details left on a
    voicemail) and the attempt failed so the ladder may fall through."""
    attempt = _attempt(request, attempt_id)
    # AnsweredBy (https://www.twilio.com/docs/voice/answering-machine-detection): machine_start (machine_end_*
    # with DetectMessageEnd) or fax means nobody is on the line; human and unknown (undecided) get the prompt
    answered_by = request.POST.get("AnsweredBy", "")
    if answered_by.startswith("machine_") or answered_by == "fax":
        # the CallSid ties the verdict to its call: before the attempt's SID came back it may be another try's
        attempt_answered_by_machine(attempt=attempt, sid=request.POST.get("CallSid", ""), answered_by=answered_by)
        return twiml_response(call_hangup_twiml())
    if attempt.incident.status != Incident.Status.TRIGGERED:
        return twiml_response(call_simple_twiml(_not_paging_text(attempt)))
    round_ = _round(request)
    config = EscalationSettings.objects.filter(tenant=attempt.tenant).first()
    return twiml_response(call_prompt_twiml(tenant=attempt.tenant, config=config, attempt_id=attempt.pk, round_=round_))


@twilio_webhook(tenant_fields=("From",))
def call_gather(request, attempt_id: int):
    """The digit pressed: ``1`` acknowledges; ``2`` acknowledges and connects them to the patient from the clinic's
    number; anything else re-prompts once, then says goodbye. Any digit
    after someone else acknowledged, or after the ladder ran out (``incident_acknowledge`` accepts no late
    acknowledgement), is told what happened (:func:`_not_paging_text`)."""
    attempt = _attempt(request, attempt_id)
    if request.POST.get("Digits", "").strip() == "2" and (bridge := page_call_connect(attempt=attempt)):
        return twiml_response(bridge)  # acknowledged by this responder: connect them to the patient
    result = ack_by_keypress(attempt=attempt, digits=request.POST.get("Digits", ""))
    if result.outcome is AckOutcome.ACKNOWLEDGED:
        return twiml_response(call_simple_twiml(call_acknowledged_text(attempt.tenant)))
    stopped = attempt.incident.status != Incident.Status.TRIGGERED  # e.g. a "2" after someone acknowledged
    if result.outcome in (AckOutcome.ALREADY, AckOutcome.CLOSED) or stopped:
        attempt.incident.refresh_from_db(fields=["status", "acknowledged_by"])
        return twiml_response(call_simple_twiml(_not_paging_text(attempt)))  # never "press 1" again
    round_ = _round(request)
    if round_ >= MAX_PROMPT_ROUNDS:
        return twiml_response(call_simple_twiml("Not acknowledged. Goodbye."))
    config = EscalationSettings.objects.filter(tenant=attempt.tenant).first()
    return twiml_response(
        call_prompt_twiml(tenant=attempt.tenant, config=config, attempt_id=attempt.pk, round_=round_ + 1)
    )


@twilio_webhook(tenant_fields=("To",))
def responder_key(request, incident_id):
    """A key pressed on a responder's own call to the clinic line (``To`` is the clinic's number): 1 acknowledges,
    2 acknowledges and connects them to the patient (``escalation.services.responders``)."""
    return twiml_response(responder_call_key(tenant=request.tenant, params=request.POST, incident_id=incident_id))


@twilio_webhook(tenant_fields=("From",))
def status_callback(request, attempt_id: int):
    """Twilio status callback of a page SMS (``MessageStatus``) or call (``CallStatus``): forward only."""
    attempt = _attempt(request, attempt_id)
    status = request.POST.get("MessageStatus") or request.POST.get("SmsStatus") or request.POST.get("CallStatus")
    if not status:
        return HttpResponse("MessageStatus or CallStatus is required", status=400)
    sid = request.POST.get("CallSid") or request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""
    attempt_status_update(
        attempt=attempt, provider_status=status, sid=sid, error_code=request.POST.get("ErrorCode", "")
    )
    return HttpResponse(status=204)
