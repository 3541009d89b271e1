"""Channel reactions to what ``conversations`` announces (connected in ``ChannelsAppConfig.ready``)."""

from __future__ import annotations

from channels_app import staff as _staff_senders  # noqa: F401 (staff messages on SMS, email, chat)
from channels_app.confirmations import appointment_confirm_task, chat_link_task  # registers the tasks too
from channels_app.email import receivers as _email_receivers  # noqa: F401 (anymail inbound, email confirmations)
from channels_app.surveys import survey_ask_task
from conversations.signals import appointment_changed, channel_switch_requested, interaction_closed


def on_appointment_changed(sender, *, appointment_id, change, version=None, **kwargs) -> None:
    """Queue the confirmation of a booked / rescheduled / cancelled appointment (a no-show gets none)."""
    if change == "no_show":
        return
    appointment_confirm_task.delay(str(appointment_id), change, version)


def on_channel_switch_requested(sender, *, interaction_id, channel, ref="", **kwargs) -> None:
    """Queue the SMS with a signed chat link ("text me a link")."""
    if channel == "chat":
        chat_link_task.delay(str(interaction_id), str(ref))


appointment_changed.connect(on_appointment_changed, dispatch_uid="channels_app.appointment_confirmation")
channel_switch_requested.connect(on_channel_switch_requested, dispatch_uid="channels_app.chat_link")


def on_interaction_closed(sender, *, interaction_id, **kwargs) -> None:
    """Queue the satisfaction survey of a closed session (it decides whether to ask)."""
    survey_ask_task.delay(str(interaction_id))


interaction_closed.connect(on_interaction_closed, dispatch_uid="channels_app.survey")
