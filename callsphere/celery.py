"""The Celery application. Configuration comes from Django settings (``CELERY_*``)."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings")

app = Celery("callsphere")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _warm_up(**kwargs) -> None:
    """Load the slow-to-initialise parsers once in the parent process, so forked pool children answer the
    first message of the day as fast as the hundredth (dateparser's language data, VADER's lexicon)."""
    import dateparser

    from enrichment.scorers import sentiment

    dateparser.parse("tomorrow at 2pm")
    sentiment("warm up")
