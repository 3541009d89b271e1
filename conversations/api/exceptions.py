"""The API's exception handler: DRF's, plus a database refusing a value (``DataError``: out of range, bad
encoding) answered as a 400 instead of a 500. Validation (filters, serializers) should catch such input first;
this is the net under it, logged so the missing validation gets added."""

from __future__ import annotations

import logging

from django.db import DataError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    if isinstance(exc, DataError):
        view = context.get("view")
        logger.warning("API input refused by the database in %s: %s", type(view).__name__, exc)
        return Response({"detail": "A parameter is out of range or malformed."}, status=400)
    return drf_exception_handler(exc, context)
