"""Agent backends behind one interface: ``respond(session, text) -> str`` (tools run as side effects).

``AGENT_BACKEND`` chooses: ``"local"``, ``"openai"``, or ``"auto"`` (the default: OpenAI when
``OPENAI_API_KEY`` is set, else local).
"""

from __future__ import annotations

from django.conf import settings


def get_backend(name: str | None = None):
    """An instance of the configured backend (see module docstring)."""
    name = name or getattr(settings, "AGENT_BACKEND", "auto")
    if name == "auto":
        name = "openai" if settings.OPENAI_API_KEY else "local"
    if name == "openai":
        from conversations.agent.backends.openai_backend import OpenAIBackend

        return OpenAIBackend()
    if name == "local":
        from conversations.agent.backends.local import LocalBackend

        return LocalBackend()
    raise ValueError(f"unknown AGENT_BACKEND {name!r}")
