from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations and call logs"

    def ready(self) -> None:
        # Outbound webhooks and the warehouse export: signal receivers, and task modules for Celery to register.
        from conversations.warehouse import tasks as warehouse_tasks  # noqa: F401
        from conversations.webhooks import receivers, tasks  # noqa: F401

        receivers.connect()
        from conversations.inbox import receivers as inbox_receivers

        inbox_receivers.connect()
        from conversations import privacy
        from identity.privacy import privacy_handler_register

        privacy_handler_register(privacy.HANDLER)
        from conversations import retention
        from identity.retention import retention_handler_register

        retention_handler_register(retention.HANDLER)
