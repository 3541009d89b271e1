"""Old home of the provider backends, kept so ``SMS_BACKEND`` / ``VOICE_BACKEND`` values written as
``channels_app.providers.sms.TwilioSmsBackend`` keep working. The providers live in :mod:`providers`."""
