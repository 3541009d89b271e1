"""The staff inbox: the human side of a conversation (needs-human, assignment, takeover, staff replies, notes).

- :mod:`.models`: ``ConversationHandling`` (one row per conversation that staff touched or the agent handed
  off), ``Takeover`` (periods during which the AI is paused; never in ``call_logs.metadata``, which is
  exported), ``InboxNote`` (internal notes, never sent).
- :mod:`.services`: ``conversation_take_over``, ``conversation_release``, ``staff_message_send``,
  ``conversation_flag_needs_human``, ``inbox_note_add``, ``conversation_assign``, ``conversation_set_status``.
- :mod:`.outbox`: how a staff message reaches the patient's channel. ``conversations`` may not import
  ``channels_app`` (DESIGN.md), so each channel registers its sender here (``channels_app.staff``).
- :mod:`.live`: the ``inbox.<tenant id>`` Channels group staff pages listen to.
"""
