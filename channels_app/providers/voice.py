"""Compatibility path for ``VOICE_BACKEND``; see :mod:`providers.voice`."""

from providers.voice import ConsoleVoiceBackend, LocmemVoiceBackend, TwilioVoiceBackend  # noqa: F401
