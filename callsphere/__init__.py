"""callsphere project package: settings, URLs, ASGI and Celery wiring (no business logic)."""

from callsphere.celery import app as celery_app

__all__ = ["celery_app"]
