FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# The processes run as this unprivileged user; only the media directory (a volume in compose) is theirs to write.
RUN groupadd --system --gid 10001 callsphere \
    && useradd --system --uid 10001 --gid callsphere --create-home --home-dir /home/callsphere --shell /usr/sbin/nologin callsphere
COPY pyproject.toml requirements.lock ./
COPY . .
# collectstatic needs loadable settings: build-only values, never used at run time (compose passes .env then).
RUN pip install -c requirements.lock . \
    && DJANGO_SETTINGS_MODULE=callsphere.settings DEBUG=0 SECRET_KEY=collectstatic-only-build-key-never-used-at-runtime-0123456789 \
    SMS_BACKEND=providers.sms.TwilioSmsBackend VOICE_BACKEND=providers.voice.TwilioVoiceBackend \
    FIELD_ENCRYPTION_KEYS=Y29sbGVjdHN0YXRpYy1vbmx5LWJ1aWxkLWtleS0wMDA= PUBLIC_BASE_URL=https://build.invalid EMAIL_URL=consolemail:// \
    DATABASE_URL=postgres://x@localhost/x REDIS_URL=redis://localhost:6379/0 python manage.py collectstatic --noinput \
    && mkdir -p /app/media /app/prometheus \
    && chown callsphere:callsphere /app/media /app/prometheus
ENV MEDIA_ROOT=/app/media
USER callsphere:callsphere
EXPOSE 8000
# Behind a load balancer that sets X-Forwarded-For/Proto, add --proxy-headers and BEHIND_TLS_PROXY=1.
CMD ["python", "-m", "callsphere.web", "-b", "0.0.0.0", "-p", "8000"]
