from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    name = "channels_app"
    verbose_name = "Channels"

    def ready(self) -> None:
        from channels_app.voice import receivers as voice_receivers

        voice_receivers.connect()
        from channels_app import (
            privacy,
            receivers,  # noqa: F401  (appointment confirmations, chat links)
        )
        from identity.privacy import privacy_handler_register

        privacy_handler_register(privacy.HANDLER)
        from channels_app import retention
        from identity.retention import retention_handler_register

        retention_handler_register(retention.HANDLER)
