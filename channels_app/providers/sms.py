"""Compatibility path for ``SMS_BACKEND``; see :mod:`providers.sms`."""

from providers.sms import ConsoleSmsBackend, LocmemSmsBackend, TwilioSmsBackend  # noqa: F401
