"""Staff see times in their clinic's time zone: the tenant's ``timezone`` is activated per request.

For an authenticated staff user with a tenant membership, every datetime Django renders (admin lists, forms,
templates, the inbox) is shown in the tenant's zone; storage stays UTC. Everyone else gets the default (UTC).
"""

from __future__ import annotations

import zoneinfo

from django.utils import timezone

from identity.models import TenantMembership


def staff_timezone(user) -> zoneinfo.ZoneInfo | None:
    """The time zone of ``user``'s tenant, or None (not staff, no membership, unknown zone)."""
    if not (getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False)):
        return None
    cached = getattr(user, "_cs_timezone", None)
    if cached is None:
        cached = TenantMembership.objects.filter(user=user).values_list("tenant__timezone", flat=True).first() or ""
        user._cs_timezone = cached
    try:
        return zoneinfo.ZoneInfo(cached) if cached else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class TenantTimezoneMiddleware:
    """Activate the staff user's clinic time zone for the request (after ``AuthenticationMiddleware``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = staff_timezone(getattr(request, "user", None))
        if zone is not None:
            timezone.activate(zone)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class PermissionsPolicyMiddleware:
    """Adds ``Permissions-Policy``: no page of ours needs the camera, microphone, geolocation, payment or USB."""

    POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", self.POLICY)
        return response
