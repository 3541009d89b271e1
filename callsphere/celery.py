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
    """Warm the parent process up (:mod:`callsphere.warmup`) before it forks its pool, so the children share what
    it loaded and answer the first message of the day as fast as the hundredth."""
    from callsphere import warmup

    if warmup.enabled():
        warmup.warm_up()


@task_postrun.connect
def _count_task(sender=None, state=None, **kwargs) -> None:
    """``callsphere_celery_tasks_total{task,state}`` (FAILURE = task failures); see observability.metrics. The
    import is here, not at the top: ``PROMETHEUS_MULTIPROC_DIR`` must be read after the settings set it."""
    from observability.metrics import CELERY_TASKS

    CELERY_TASKS.labels(task=getattr(sender, "name", "unknown"), state=state or "UNKNOWN").inc()
