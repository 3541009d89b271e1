FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml requirements.lock ./
COPY . .
RUN pip install -c requirements.lock . && DJANGO_SETTINGS_MODULE=callsphere.settings SECRET_KEY=collectstatic-only-build-key-never-used-at-runtime-0123456789 \
    SMS_BACKEND=providers.sms.TwilioSmsBackend VOICE_BACKEND=providers.voice.TwilioVoiceBackend \
    FIELD_ENCRYPTION_KEYS=Y29sbGVjdHN0YXRpYy1vbmx5LWJ1aWxkLWtleS0wMDA= PUBLIC_BASE_URL=https://build.invalid EMAIL_URL=consolemail:// \
    DATABASE_URL=postgres://x@localhost/x REDIS_URL=redis://localhost:6379/0 python manage.py collectstatic --noinput
EXPOSE 8000
# Behind a load balancer that sets X-Forwarded-For/Proto, add --proxy-headers and BEHIND_TLS_PROXY=1.
CMD ["python", "-m", "callsphere.web", "-b", "0.0.0.0", "-p", "8000"]
