"""Admin of the channels app (email mailboxes, inbound emails); see :mod:`channels_app.email.admin`."""

from channels_app.email import admin as _email_admin  # noqa: F401  (registers the email models)
