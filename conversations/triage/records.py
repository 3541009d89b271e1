"""Write side of triage: store a decision for review and the interaction's live urgency."""

from __future__ import annotations

from conversations.triage.models import TriageDecision
from conversations.triage.service import TriageResult


def triage_record(*, interaction, channel: str, result: TriageResult) -> TriageDecision | None:
    """Store ``result`` for review when it matters (not routine, or the LLM was asked); returns the row or None.

    Also raises the interaction's live urgency (``call_logs.urgency``, never lowered) and its intent.
    """
    from conversations.services import interaction_set_assessment

    interaction_set_assessment(
        interaction=interaction, urgency=result.urgency, intent=result.intent if result.intent != "other" else None
    )
    if result.level == "routine" and result.engine == "rules":
        return None
    return TriageDecision.objects.create(
        tenant_id=interaction.tenant_id,
        interaction=interaction,
        channel=channel[:16],
        level=result.level,
        rules_level=result.rules_level,
        llm_level=result.llm_level or "",
        codes=list(result.codes),
        llm_codes=list(result.llm_codes),
        llm_rationale=result.llm_rationale[:300],
        llm_error=result.llm_error[:120],
        language=result.language,
        engine=result.engine,
        kb_version=result.kb_version,
        disagreement=result.disagreement,
    )
