from django.apps import AppConfig


class EscalationConfig(AppConfig):
    name = "escalation"
    verbose_name = "Escalation (on-call)"

    def ready(self) -> None:
        from conversations.signals import customer_message_received, escalation_requested
        from escalation import hooks

        customer_message_received.connect(hooks.on_customer_message, dispatch_uid="escalation.screen_message")
        escalation_requested.connect(hooks.on_escalation_requested, dispatch_uid="escalation.requested")
        from escalation import privacy
        from identity.privacy import privacy_handler_register

        privacy_handler_register(privacy.HANDLER)
