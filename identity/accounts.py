"""Staff accounts fit for PHI: TOTP two-factor (django-otp) for admin, and the login lockout's answer (django-axes).

Who must use a second factor (:func:`otp_required`): superusers and clinic admins (``ADMIN_OTP_REQUIRED``,
default on), and the staff of a tenant whose ``require_staff_otp`` is set. Such a user, signed in with a password
but not yet verified in this session, reaches only the OTP pages under ``/admin/otp/`` (enrol a device with a QR
code, or type a code), logout, and static files: :class:`StaffOTPMiddleware` sends every other ``/admin/`` page to
them and answers session-authenticated ``/api/`` requests 403. The inbox websocket checks the same
(:func:`session_otp_verified`). Codes are throttled per device by django-otp (growing delays after failures);
passwords by django-axes (``LOGIN_FAILURE_LIMIT`` failures → 429 for ``LOGIN_LOCKOUT_MINUTES``).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from identity.models import TenantMembership

OTP_PREFIX = "/admin/otp/"
_EXEMPT_PREFIXES = (OTP_PREFIX, "/admin/logout/", "/admin/login/", "/admin/jsi18n/", "/static/")
_UNSET = object()


def otp_required(user) -> bool:
    """True when ``user`` must verify a TOTP code before using admin, the inbox or the API with a session.

    Superusers and clinic admins when ``settings.ADMIN_OTP_REQUIRED`` (default True); other staff when their
    tenant's ``require_staff_otp`` is set. Anonymous and non-staff users: False. Cached on the user object.
    """
    if not (getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False)):
        return False
    cached = getattr(user, "_cs_otp_required", _UNSET)
    if cached is _UNSET:
        membership = TenantMembership.objects.filter(user=user).values_list("role", "tenant__require_staff_otp").first()
        admin_like = user.is_superuser or (membership is not None and membership[0] == TenantMembership.Role.ADMIN)
        cached = bool((admin_like and settings.ADMIN_OTP_REQUIRED) or (membership is not None and membership[1]))
        user._cs_otp_required = cached
    return bool(cached)


def otp_verified(user) -> bool:
    """True when django-otp's ``OTPMiddleware`` found a confirmed device of ``user`` in this request's session."""
    return getattr(user, "otp_device", None) is not None


def session_otp_verified(user, session) -> bool:
    """True when ``session`` (a Django session, e.g. a websocket scope's) holds a confirmed device of ``user``.

    The same check django-otp's ``OTPMiddleware`` makes for HTTP requests, for code paths it does not run on.
    """
    persistent_id = session.get(DEVICE_ID_SESSION_KEY) if session is not None else None
    if not persistent_id or not getattr(user, "pk", None):
        return False
    device = Device.from_persistent_id(persistent_id)
    return device is not None and device.user_id == user.pk and device.confirmed


def safe_next(request: HttpRequest, default: str = "/admin/") -> str:
    """The ``next`` parameter when it is a same-host path, else ``default`` (no open redirect)."""
    target = request.POST.get("next") or request.GET.get("next") or default
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


class StaffOTPMiddleware:
    """After django-otp's ``OTPMiddleware``: a user who needs a second factor and has not given one this session
    is sent to enrol (no device yet) or verify (``/admin/…``), or refused 403 (``/api/…`` by session)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        guarded = path.startswith("/admin/") or (path.startswith("/api/") and "HTTP_AUTHORIZATION" not in request.META)
        if not guarded or path.startswith(_EXEMPT_PREFIXES):
            return self.get_response(request)
        user = request.user
        if not otp_required(user) or otp_verified(user):
            return self.get_response(request)
        if path.startswith("/api/"):
            return JsonResponse(
                {"detail": "Two-factor verification required: enter a code from your authenticator at /admin/otp/."},
                status=403,
            )
        step = "verify" if TOTPDevice.objects.filter(user=user, confirmed=True).exists() else "setup"
        return redirect(f"{OTP_PREFIX}{step}/?{urlencode({'next': request.get_full_path()})}")


def axes_lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' lockout answer (``AXES_LOCKOUT_CALLABLE``): 429 with a page (or JSON) that says what happened
    and when to try again. Says the same whether or not the username exists."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = (
        f"Too many failed sign-in attempts. This sign-in is locked for {minutes} minutes; try again later, or ask "
        "your clinic admin or the operator to unlock it."
    )
    response: HttpResponse
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response = JsonResponse({"detail": message, "retry_after_minutes": minutes}, status=429)
    else:
        context = {"message": message, "title": "Sign-in locked"}
        response = render(request, "admin/locked_out.html", context, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response
