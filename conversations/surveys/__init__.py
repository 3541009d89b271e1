"""The satisfaction survey (issue 15, CSAT): one question after a session closes, answered on its channel.

``models``: :class:`SatisfactionSurvey`. ``services``: whether to ask, opening one (once per conversation, a
constraint, and once per customer per cooldown), the answer (written to ``call_logs.satisfaction`` with
``satisfaction_source = "survey"``, which enrichment's inferred score never overwrites) and opting out. Sending
is the channels' job (``channels_app.surveys``).
"""
