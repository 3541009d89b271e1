"""``/admin/otp/setup/`` (enrol an authenticator app: QR code + first code) and ``/admin/otp/verify/`` (a code
for this session). Both need a signed-in staff user; see :mod:`identity.accounts` for who must use them.

Enrolling replaces the user's devices, so it is allowed only to a user who has no confirmed device yet or who
has already verified this session: a stolen password alone cannot swap in the thief's authenticator.
"""

from __future__ import annotations

from urllib.parse import urlencode

import segno
from django import forms
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from identity.accounts import otp_verified
from identity.accounts import safe_next as _safe_next
from identity.admin_scoping import user_tenant_id
from identity.audit import audit_record

ENROL_DEVICE_NAME = "Authenticator app"


class TokenForm(forms.Form):
    """A 6-digit code; spaces and dashes people type from their app are dropped."""

    token = forms.CharField(
        label="6-digit code",
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )

    def clean_token(self) -> str:
        token = "".join(ch for ch in self.cleaned_data["token"] if ch not in " -")
        if not (token.isdigit() and len(token) == 6):
            raise forms.ValidationError("Enter the 6 digits your authenticator app shows.")
        return token


def _staff_only(view):
    """Signed-in, active staff only (others go to the admin login)."""

    def wrapped(request: HttpRequest) -> HttpResponse:
        if not (request.user.is_active and request.user.is_staff):
            return redirect("/admin/login/?" + urlencode({"next": request.path}))
        return view(request)

    return never_cache(login_required(wrapped, login_url="/admin/login/"))


def _context(request: HttpRequest, **extra) -> dict:
    return {**admin.site.each_context(request), "next": _safe_next(request), **extra}


def _qr_svg(url: str) -> str:
    """The ``otpauth://`` URL as an inline SVG QR code (segno; no external request, nothing stored)."""
    return segno.make(url, error="m").svg_inline(scale=5, border=2, dark="#000", light="#fff")


@_staff_only
def otp_setup(request: HttpRequest) -> HttpResponse:
    """GET: a QR code of a new (unconfirmed) TOTP secret. POST ``token``: confirm it, replace the user's other
    devices and mark this session verified; a wrong code re-renders the same secret with an error."""
    user = request.user
    has_confirmed = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    if has_confirmed and not otp_verified(user):
        return redirect("/admin/otp/verify/?" + urlencode({"next": _safe_next(request)}))
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=ENROL_DEVICE_NAME, confirmed=False)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        allowed, _ = device.verify_is_allowed()
        if not allowed:
            form.add_error("token", "Too many wrong codes in a row: wait a few seconds, then type the newest code.")
        elif device.verify_token(form.cleaned_data["token"]):
            with transaction.atomic():
                TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
                device.confirmed = True
                device.save(update_fields=["confirmed"])
            otp_login(request, device)
            audit_record(request=request, action="account.otp_enrolled", tenant_id=user_tenant_id(user), obj=device)
            return redirect(_safe_next(request))
        else:
            form.add_error("token", "That code did not match. Check the time on your phone and try the newest code.")
    secret = device.config_url.split("secret=", 1)[1].split("&", 1)[0]
    context = _context(
        request,
        title="Set up two-factor sign-in",
        form=form,
        qr_svg=mark_safe(_qr_svg(device.config_url)),
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
    )
    return render(request, "admin/otp_setup.html", context, status=400 if form.errors else 200)


@_staff_only
def otp_verify(request: HttpRequest) -> HttpResponse:
    """POST ``token``: a code from one of the user's confirmed devices marks this session verified. Without a
    device the user is sent to enrol."""
    user = request.user
    if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        return redirect("/admin/otp/setup/?" + urlencode({"next": _safe_next(request)}))
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = match_token(user, form.cleaned_data["token"])
        if device is not None:
            otp_login(request, device)
            return redirect(_safe_next(request))
        form.add_error("token", "That code did not match (or too many tries: wait a few seconds and use a new code).")
    context = _context(request, title="Two-factor sign-in", form=form)
    return render(request, "admin/otp_verify.html", context, status=400 if form.errors else 200)


urlpatterns = [
    path("setup/", otp_setup, name="otp-setup"),
    path("verify/", otp_verify, name="otp-verify"),
]
