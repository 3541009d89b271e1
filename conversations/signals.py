"""Signals other apps listen to (imports point one way, so conversations announces instead of calling).

- ``interaction_closed(interaction_id)``: sent on commit after a ``call_logs`` row closes; enrichment queues
  its task from it.
- ``conversation_closed(conversation_id)``: sent on commit after a conversation closes (outbound webhooks), once
  per conversation: ``close_idle`` closes it after the tenant's ``conversation_quiet_period``.
- ``interaction_enriched(interaction_id)``: sent after enrichment wrote scores.
- ``interaction_rescore_requested(interaction_id)``: a closed row's transcript changed (a late voicemail
  transcript); enrichment scores it again. Send on commit.
- ``customer_message_received(interaction_id, message_id, text, conversation_id, tenant_id, tenant)``: sent on
  commit after a new (not duplicate) inbound customer message was recorded on any channel; escalation screens it
  for urgency, the inbox marks its conversation. ``tenant`` is the :class:`~identity.models.Tenant` loaded for the
  message (its ``emergency_phrases``), so receivers need not read the row, its conversation or its tenant again.
- ``escalation_requested(interaction_id, urgency, reason)``: a channel (voice agent, voicemail analyzer,
  email triage...) judged an interaction urgent (urgency 1–5, reason a short non-PHI label such as
  ``"emergency phrase"``); escalation raises at most one incident per interaction from it. Send on commit.
- ``callback_requested(interaction_id, callback_request_id)``: the agent recorded a callback request; the voice
  channel places the outbound call. Sent on commit.
- ``appointment_changed(appointment_id, change)``: an appointment was booked / rescheduled / cancelled
  (``change`` is ``"booked"|"rescheduled"|"cancelled"``; channels send the confirmation) or recorded as a
  no-show by the sweep (``"no_show"``; nothing is sent to the patient, CRMs mark the meeting). Sent on commit.
  Also carries ``version`` (the appointment's version after the change, for idempotency keys).
- ``channel_switch_requested(interaction_id, channel)``: the customer asked to continue on another channel
  ("text me a link"; ``channel`` is ``"chat"``; ``ref`` distinguishes requests, for idempotency); channels
  send a signed link by SMS. Sent on commit.
"""

import django.dispatch

interaction_closed = django.dispatch.Signal()
conversation_closed = django.dispatch.Signal()
interaction_enriched = django.dispatch.Signal()
interaction_rescore_requested = django.dispatch.Signal()
customer_message_received = django.dispatch.Signal()
escalation_requested = django.dispatch.Signal()
callback_requested = django.dispatch.Signal()
appointment_changed = django.dispatch.Signal()
channel_switch_requested = django.dispatch.Signal()
