"""Triage: one service that every channel, the agent and enrichment call for a patient's words.

``assess(text, tenant=…, timeout=…)`` → :class:`TriageResult`: ``level`` (emergency / urgent / routine) and the
1–5 ``urgency`` kept in ``call_logs``, red-flag ``codes`` (non-PHI), ``evidence`` spans, ``language``,
``intent``, ``engine`` (``rules`` or ``rules+llm``) and the knowledge base's ``kb_version``. The local engine
is the rules (:mod:`conversations.triage.rules`, data in ``kb/``) with a learned model beside them
(:mod:`conversations.triage.model`, trained from ``data/``); with an LLM configured its second opinion may
raise the local level, never lower it. Triage is not a diagnosis: it decides who must look, and how fast.
"""

from conversations.triage.service import Evidence, TriageResult, assess, assess_rules, safety_reply

__all__ = ["Evidence", "TriageResult", "assess", "assess_rules", "safety_reply"]
