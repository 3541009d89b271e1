"""Signal receivers of the voice channel, connected in ``ChannelsAppConfig.ready``."""

from channels_app.voice import tasks  # noqa: F401 - registers the voice tasks with Celery workers
from channels_app.voice.callback import on_callback_requested
from channels_app.voice.recordings import on_recording_deletion_requested
from conversations.recordings.services import recording_deletion_requested
from conversations.signals import callback_requested


def connect() -> None:
    """Connect the voice receivers (idempotent by ``dispatch_uid``)."""
    callback_requested.connect(on_callback_requested, dispatch_uid="channels_app.voice.place_callback", weak=False)
    recording_deletion_requested.connect(
        on_recording_deletion_requested, dispatch_uid="channels_app.voice.delete_recordings", weak=False
    )
