"""ASGI entry point: HTTP through Django, websockets through Channels (served by daphne)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from callsphere.asgi_guard import FinishStartedResponses  # noqa: E402
from callsphere.overload import ShedLoad  # noqa: E402
from callsphere.routing import websocket_urlpatterns  # noqa: E402
from channels_app.chat.middleware import WidgetOriginMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Past capacity an HTTP request gets 503 + Retry-After before any work (callsphere.overload); a response
        # that fails after it started is finished cleanly (callsphere.asgi_guard).
        "http": ShedLoad(FinishStartedResponses(django_asgi_app)),
        # The chat websocket checks the widget's Origin against its tenant's allowed origins before accepting.
        "websocket": WidgetOriginMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
