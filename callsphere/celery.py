"""The Celery application. Configuration comes from Django settings (``CELERY_*``)."""

import os

from celery import Celery
from celery.signals import task_postrun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings")

app = Celery("callsphere")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _warm_up(**kwargs) -> None:
    """Load the slow-to-initialise parsers once in the parent process, so forked pool children answer the
    first message of the day as fast as the hundredth (dateparser's language data, VADER's lexicon, triage's
    knowledge base and learned model, which trains in about a second)."""
    import dateparser

    from conversations.triage import assess_rules
    from enrichment.scorers import sentiment

    dateparser.parse("tomorrow at 2pm")
    sentiment("warm up")
    assess_rules("warm up: chest pain / dolor de pecho")


@task_postrun.connect
def _count_task(sender=None, state=None, **kwargs) -> None:
    """``callsphere_celery_tasks_total{task,state}`` (FAILURE = task failures); see observability.metrics. The
    import is here, not at the top: ``PROMETHEUS_MULTIPROC_DIR`` must be read after the settings set it."""
    from observability.metrics import CELERY_TASKS

    CELERY_TASKS.labels(task=getattr(sender, "name", "unknown"), state=state or "UNKNOWN").inc()
