from django.apps import AppConfig


class EnrichmentConfig(AppConfig):
    name = "enrichment"
    verbose_name = "Enrichment"

    def ready(self) -> None:
        from conversations.signals import interaction_closed, interaction_rescore_requested

        def queue_enrichment(sender, *, interaction_id, **kwargs):
            from enrichment.tasks import enrich_interaction

            enrich_interaction.delay(str(interaction_id))

        interaction_closed.connect(queue_enrichment, dispatch_uid="enrichment.queue_on_close", weak=False)
        interaction_rescore_requested.connect(queue_enrichment, dispatch_uid="enrichment.queue_on_rescore", weak=False)
