"""``{% escalation_pipeline_banner %}``: the admin's red banner while the escalation pipeline is down."""

from django import template

from escalation import selectors

register = template.Library()


@register.inclusion_tag("escalation/admin/pipeline_banner.html", takes_context=True)
def escalation_pipeline_banner(context) -> dict:
    """Staff pages only; reads the heartbeats (changes nothing: the web process's watchdog does the rest)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_staff:
        return {"down": False}
    health = selectors.pipeline_health()
    return {"down": not health.ok, "health": health}
