"""Escalation writes (every one goes through here). Split by concern:

- :mod:`~escalation.services.incidents`: raise, fire a step, fall through, acknowledge, alert admins;
- :mod:`~escalation.services.attempts`: send one attempt exactly once, reconcile, status callbacks, calls
  answered by a machine;
- :mod:`~escalation.services.hangups`: hang up the other page calls once an incident is acknowledged;
- :mod:`~escalation.services.acks`: the three ways to acknowledge (link, SMS reply, keypress);
- :mod:`~escalation.services.messages`: page texts, call TwiML, ack-link tokens;
- :mod:`~escalation.services.timeline`: the attempts mirrored into ``call_logs``;
- :mod:`~escalation.services.audit`: the beat auditor;
- :mod:`~escalation.services.heartbeat`: the pipeline's dead-man's switch (heartbeats, outages, admin texts).
"""

from escalation.services.acks import (
    AckOutcome,
    AckResult,
    ack_by_keypress,
    ack_by_link,
    ack_by_sms,
    ack_form_nonce,
    ack_form_nonce_valid,
    ack_link_inspect,
)
from escalation.services.attempts import (
    Outbound,
    attempt_answered_by_machine,
    attempt_deliver,
    attempt_send,
    attempt_status_update,
    attempts_dispatch,
)
from escalation.services.audit import escalation_audit
from escalation.services.incidents import (
    incident_acknowledge,
    incident_alert_admins,
    incident_fall_through,
    incident_raise,
    incident_resolve,
    incident_run_step,
    incident_should_raise,
    policy_snapshot,
)

__all__ = [
    "AckOutcome",
    "AckResult",
    "Outbound",
    "ack_by_keypress",
    "ack_link_inspect",
    "ack_by_link",
    "ack_by_sms",
    "ack_form_nonce",
    "ack_form_nonce_valid",
    "attempt_answered_by_machine",
    "attempt_deliver",
    "attempt_send",
    "attempt_status_update",
    "attempts_dispatch",
    "escalation_audit",
    "incident_acknowledge",
    "incident_alert_admins",
    "incident_fall_through",
    "incident_raise",
    "incident_resolve",
    "incident_run_step",
    "incident_should_raise",
    "policy_snapshot",
]
