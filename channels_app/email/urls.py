"""Email URLs: the raw inbound endpoint and anymail's inbound webhooks (``/email/anymail/<esp>/inbound/``).

Only anymail's *inbound* routes are mounted, each wrapped to fail closed: without ``ANYMAIL["WEBHOOK_SECRET"]``
(anymail's shared basic-auth secret) they answer 403 instead of accepting unauthenticated mail.
"""

from functools import wraps

from anymail import urls as anymail_urls
from django.http import HttpResponseForbidden
from django.urls import URLPattern, include, path

from channels_app.email import views


def _require_secret(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not views._secrets():
            return HttpResponseForbidden("inbound email webhooks need ANYMAIL_WEBHOOK_SECRET")
        return view(request, *args, **kwargs)

    wrapped.csrf_exempt = True
    return wrapped


_inbound = [
    URLPattern(p.pattern, _require_secret(p.callback), p.default_args, p.name)
    for p in anymail_urls.urlpatterns
    if p.name and ("inbound" in p.name or p.name == "mandrill_webhook")
]

urlpatterns = [
    path("email/inbound/", views.email_inbound_raw, name="email-inbound-raw"),
    path("email/anymail/", include((_inbound, "anymail"), namespace="anymail")),
]
