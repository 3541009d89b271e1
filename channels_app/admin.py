"""Admin of the channels app: email (:mod:`channels_app.email.admin`), inbound SMS (:mod:`channels_app.sms.admin`)."""

from channels_app.email import admin as _email_admin  # noqa: F401  (registers the email models)
from channels_app.sms import admin as _sms_admin  # noqa: F401  (registers inbound SMS not yet recorded)
