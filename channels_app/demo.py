"""Demo data of the channels app for ``seed_demo``: the agent's settings row and the demo page URLs."""

from django.conf import settings


def seed(tenant) -> dict:
    """Create the demo tenant's agent settings (defaults: Mon–Fri 9–5, 30-minute slots) if missing."""
    from channels_app.email.demo import seed as seed_email
    from conversations.models import AgentSettings

    AgentSettings.objects.get_or_create(tenant=tenant)
    return {
        "demo_page": f"{settings.PUBLIC_BASE_URL}/demo/",
        "widget_js": f"{settings.PUBLIC_BASE_URL}/widget.js",
        **seed_email(tenant),
    }
