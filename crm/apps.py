from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM connectors"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm import receivers

        receivers.connect()
