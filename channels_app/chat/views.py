"""HTTP side of the chat channel: ``/widget.js``, the demo clinic page ``/demo/`` and chat links ``/c/<token>``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.contrib.staticfiles import finders
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from channels_app.chat.links import InvalidLink, chat_link_customer
from identity.models import Tenant

DEMO_SLUG = "demo"


@lru_cache(maxsize=1)
def _widget_source() -> bytes:
    path = finders.find("widget/widget.js")
    if not path:
        raise Http404("widget asset missing")
    return Path(path).read_bytes()


@require_GET
def widget_js(request):
    """The embeddable widget script (see static/widget/widget.js); cacheable for five minutes."""
    response = HttpResponse(_widget_source(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
def demo_page(request):
    """A sample clinic website with the widget embedded by one script tag (the ``demo`` tenant's key)."""
    tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
    if tenant is None:
        raise Http404("run `manage.py seed_demo` first")
    return render(request, "demo/clinic.html", {"tenant": tenant})


@require_GET
def chat_link(request, token: str):
    """The hosted chat page a signed link opens, already identified; 410 for a forged or expired link."""
    try:
        customer = chat_link_customer(token)
    except InvalidLink:
        return render(request, "demo/chat_link_invalid.html", status=410)
    response = render(request, "demo/chat_link.html", {"tenant": customer.tenant, "token": token})
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response
