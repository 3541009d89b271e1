"""Settings, 12-factor style: everything that differs between deployments comes from the environment.

Every variable read here is documented in ``.env.example`` (a test keeps the two in step). Importing the
settings starts nothing: the embedded PostgreSQL and Redis of local development are started by the dev entry
points (``manage.py`` and ``python -m callsphere.run`` under ``DEBUG=1``, see
:func:`callsphere.embedded.ensure_dev_environment`; the test settings), which export ``DATABASE_URL`` /
``REDIS_URL``. With ``DEBUG=0`` nothing is guessed: every required variable that is missing (or a weak
``SECRET_KEY``) is reported together in one :class:`~django.core.exceptions.ImproperlyConfigured`.
"""

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django_guid.integrations import CeleryIntegration

from callsphere import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DATA_DIR = Path(env("CALLSPHERE_DATA_DIR", default=str(BASE_DIR / ".data")))
DEBUG = env.bool("DEBUG", default=False)

# --- required: read first, all reported at once ----------------------------------------------------------------
_MISSING: list[str] = []  # one line per problem: "NAME: how to set it"


def _required(name: str, how: str, *, debug_default: str | None = None) -> str:
    """The non-empty value of ``name``; missing, a problem is recorded (unless DEBUG supplies ``debug_default``)."""
    value = env.str(name, default="").strip()
    if value:
        return value
    if DEBUG and debug_default is not None:
        return debug_default
    _MISSING.append(f"{name}: {how}")
    return ""


_DEV_SERVERS = "under DEBUG=1 start through manage.py or `make run`, which start the embedded servers"
DATABASE_URL = _required(
    "DATABASE_URL", f"a PostgreSQL URL, e.g. postgres://callsphere:PASSWORD@db:5432/callsphere ({_DEV_SERVERS})"
)
REDIS_URL = _required("REDIS_URL", f"a Redis URL, e.g. redis://redis:6379/0 ({_DEV_SERVERS})")
# Under DEBUG (make run) a random key is made once and kept in DATA_DIR, so the secrets derived from it
# (ack-link MACs, chat links, Fernet key) are never a constant anyone could know. Writing one file, no server.
_NEW_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(50))"'
SECRET_KEY = _required("SECRET_KEY", f"at least 50 random characters: {_NEW_KEY}", debug_default="") or (
    embedded.local_secret_key(DATA_DIR) if DEBUG else ""
)
# Retired SECRET_KEYs, newest first: links and cookies signed with them (ack, chat, portal) stay valid.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
# Keys for the secrets in ack and chat links, "<kid>:<secret>" newest first (identity.keys): links carry the kid.
LINK_SIGNING_KEYS = env.list("LINK_SIGNING_KEYS", default=[])
for _entry in LINK_SIGNING_KEYS:
    _kid, _sep, _secret = _entry.partition(":")
    if not (_sep and _kid.isalnum() and len(_kid) <= 8 and len(_secret) >= 32):
        _MISSING.append(f"LINK_SIGNING_KEYS: {_kid[:8]!r}… is not <kid>:<secret> (kid 1-8 letters/digits, 32+ chars)")
# Keys for secrets encrypted at rest (tenant Twilio auth tokens): Fernet keys, newest first (the first encrypts,
# all decrypt; ``manage.py rotate_encrypted_fields`` re-encrypts under the first). FIELD_ENCRYPTION_KEY (one key)
# is read too, after them. Under DEBUG with neither set, a key derived from SECRET_KEY (identity.fields).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[]) + env.list("FIELD_ENCRYPTION_KEY", default=[])
if not FIELD_ENCRYPTION_KEYS and not DEBUG:
    _MISSING.append(
        "FIELD_ENCRYPTION_KEYS: Fernet keys, newest first, comma-separated: "
        'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
    )
for _key in FIELD_ENCRYPTION_KEYS:
    try:
        Fernet(_key.strip().encode())
    except ValueError:
        _MISSING.append(f"FIELD_ENCRYPTION_KEYS: {_key[:4]}… is not a Fernet key (urlsafe base64 of 32 bytes)")
PUBLIC_BASE_URL = _required(
    "PUBLIC_BASE_URL",
    "the public https URL Twilio and patients reach, e.g. https://callsphere.example.com",
    # under DEBUG: where `make run` serves (WEB_PORT, as the Procfile binds it), so texted links open there
    debug_default=f"http://127.0.0.1:{env.str('WEB_PORT', default='').strip() or '8000'}",
).rstrip("/")
# The console backends only print: a default under DEBUG (make run), never silently in production, where an
# unset backend would let the escalation ladder "page" nobody.
SMS_BACKEND = _required(
    "SMS_BACKEND", "e.g. providers.sms.TwilioSmsBackend", debug_default="providers.sms.ConsoleSmsBackend"
)
VOICE_BACKEND = _required(
    "VOICE_BACKEND", "e.g. providers.voice.TwilioVoiceBackend", debug_default="providers.voice.ConsoleVoiceBackend"
)
EMAIL_URL = _required(
    "EMAIL_URL", "outbound mail, e.g. smtp+tls://user:password@smtp.example.com:587", debug_default="consolemail://"
)
_WEAK_SECRET_KEYS = {"changeme", "change-me", "secret", "secret-key", "password", "django", "dev", "test"}
if (
    not DEBUG
    and SECRET_KEY
    and (
        len(SECRET_KEY) < 50
        or len(set(SECRET_KEY)) < 5
        or SECRET_KEY.startswith("django-insecure")
        or SECRET_KEY.lower() in _WEAK_SECRET_KEYS
    )
):
    _MISSING.append(f"SECRET_KEY is too weak for DEBUG=0: use at least 50 random characters ({_NEW_KEY})")
if _MISSING:
    raise ImproperlyConfigured(
        "callsphere cannot start: these environment variables are missing or unusable "
        f"({'DEBUG=1' if DEBUG else 'DEBUG=0'}; see .env.example):\n  - " + "\n  - ".join(_MISSING)
    )

_PUBLIC_HOST = urlsplit(PUBLIC_BASE_URL).hostname or "localhost"
# localhost: the container healthchecks and /metrics scrapes on the host itself
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if DEBUG else [_PUBLIC_HOST, "localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PUBLIC_BASE_URL])
# Only behind a TLS-terminating proxy that sets X-Forwarded-Proto itself (BEHIND_TLS_PROXY=1) is that header
# trusted; otherwise any client could claim https.
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
_HTTPS = PUBLIC_BASE_URL.startswith("https://")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=_HTTPS and not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if _HTTPS and not DEBUG else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Probes and scrapes from inside the host speak plain http: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz", r"^metrics$"]
SECURE_REFERRER_POLICY = "same-origin"
# Django checks that are a decision for the domain's owner, not a defect: the HSTS preload list (W021).
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[] if SECURE_HSTS_PRELOAD else ["security.W021"])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "anymail",
    "identity",
    "conversations",
    "channels_app",
    "enrichment",
    "escalation",
    "crm",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "callsphere.db_timeouts.StatementTimeoutMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "identity.middleware.TenantTimezoneMiddleware",  # staff see their clinic's local time
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "callsphere.urls"
ASGI_APPLICATION = "callsphere.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------------------------
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
# DB_POOL_MAX_SIZE > 0: a psycopg connection pool per process (Django 5.1+), so no request pays for connection
# setup. The web process turns it on (callsphere.web sizes it); daphne runs each sync view on a thread of its own,
# so per-thread persistent connections (CONN_MAX_AGE) would pile up there, whereas the pool bounds them: at most
# DB_POOL_MAX_SIZE per process, and a request that cannot get one within DB_POOL_TIMEOUT seconds fails fast.
# Celery processes keep CONN_MAX_AGE (one connection per worker process). Django's pool checks a connection
# when it is handed out (CONN_HEALTH_CHECKS), so one PostgreSQL dropped is replaced.
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=0)
if DB_POOL_MAX_SIZE > 0:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env.float("DB_POOL_TIMEOUT", default=5.0),
        "max_idle": 300,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# statement_timeout per role, by path prefix (callsphere.db_timeouts): exports and reports may run longer than
# Twilio's webhooks, which must answer within seconds; neither can hold a connection without bound.
DB_STATEMENT_TIMEOUTS = {
    "/api/": env.int("API_STATEMENT_TIMEOUT_MS", default=60_000),
    "/twilio/": env.int("WEBHOOK_STATEMENT_TIMEOUT_MS", default=15_000),
    "/email/inbound/": env.int("WEBHOOK_STATEMENT_TIMEOUT_MS", default=15_000),
}

# --- redis: cache, channel layer, celery broker ------------------------------------------------------------
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
# redis-py 8 defaults socket_timeout to 5 s, which aborts channels_redis's idle blocking BZPOPMIN (itself 5 s)
# and tears every websocket consumer down every ~5 s (django/channels_redis#422). Keep a timeout, above it.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
    },
}

CELERY_BROKER_URL = embedded.celery_broker_url(REDIS_URL)
# A broker restart must never end a worker: retry connecting at startup and after a loss, for ever (Celery's
# default gives up after 100 tries and the worker exits). Workers also need kombu >= 5.4, which re-registers
# its Redis connections after a reconnect (kombu#2007; with 5.3.x a worker reconnected but consumed nothing),
# and Celery < 5.7 (5.7.0 exits on a lost Redis connection): see pyproject.toml. The supervisor (make run) and
# compose restart whatever still dies.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
# Delayed (countdown/eta) tasks sit unacked in Redis; the visibility timeout must exceed the longest delay we
# schedule or Redis redelivers them early. Escalation never schedules further out than this (see escalation).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    # notice a dead Redis connection (a restart) within seconds instead of at the next command's error
    "health_check_interval": 10,
}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Celery keeps its result backend per thread unless told it is thread-safe, and builds it again for every new
# thread: Django under ASGI runs each request on a thread of its own, so every ``.delay()`` in a view scanned
# every installed distribution's entry points (importlib.metadata) to find the "disabled" backend — ~15 % of the
# web process's CPU on the SMS webhook. No results are stored, so the one disabled backend is safe to share.
CELERY_RESULT_BACKEND_THREAD_SAFE = True
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_TASK_ACKS_LATE = False  # opted into per task, only where the task is idempotent
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"escalation.*": {"queue": "escalation"}}
CELERY_TIMEZONE = "UTC"
# Dead-man's switch (escalation.services.heartbeat): /healthz/escalation answers 503 and the web process texts the
# tenants' admins once no heartbeat (beat's auditor, the escalation-queue canary) is younger than this (seconds).
ESCALATION_HEARTBEAT_MAX_AGE = env.float("ESCALATION_HEARTBEAT_MAX_AGE", default=30.0)
# How often the web process's watchdog thread checks the heartbeats (seconds; 0 = no thread, /healthz only).
ESCALATION_WATCHDOG_SECONDS = env.float("ESCALATION_WATCHDOG_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "close-idle-sessions": {
        "task": "conversations.tasks.close_idle_sessions",
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
    # Re-drives escalation steps and sends a lost task left behind (see escalation.services.audit).
    "escalation-audit": {
        "task": "escalation.tasks.escalation_audit",
        "schedule": env.float("ESCALATION_AUDIT_SECONDS", default=5.0),
        "options": {"expires": env.float("ESCALATION_AUDIT_SECONDS", default=5.0)},
    },
    # Re-queues outbound SMS / callback calls / emails left pending by a lost task (channels_app.delivery).
    "outbound-redrive": {"task": "channels_app.tasks.outbound_redrive", "schedule": 30.0, "options": {"expires": 30}},
    # Re-queues replies to inbound SMS, voicemail recordings and email triage whose task was lost (channels_app.tasks).
    "inbound-redrive": {"task": "channels_app.tasks.inbound_redrive", "schedule": 30.0, "options": {"expires": 30}},
    # Re-queues the enrichment of closed call_logs rows whose task was lost (enrichment.services).
    "enrichment-redrive": {
        "task": "enrichment.tasks.enrichment_redrive_task",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
}

# --- i18n / time -------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(DATA_DIR / "media")))

# --- providers ---------------------------------------------------------------------------------------------
# SMS_BACKEND / VOICE_BACKEND: read with the required variables at the top.
# Base URL of Twilio's REST API; only a local stub in tests and benchmarks changes it.
TWILIO_API_BASE = env("TWILIO_API_BASE", default="https://api.twilio.com").rstrip("/")
TWILIO_TIMEOUT_SECONDS = env.float("TWILIO_TIMEOUT_SECONDS", default=10.0)
# A claimed outbound SMS/call keeps other workers off this long (channels_app.delivery); > connect + read timeout.
OUTBOUND_SEND_LEASE_SECONDS = env.float("OUTBOUND_SEND_LEASE_SECONDS", default=max(60.0, 4 * TWILIO_TIMEOUT_SECONDS))
# Inbound SMS handlers tried before the patient flow (f(tenant, params) -> bool; True = claimed).
SMS_INBOUND_HANDLERS = ["escalation.hooks.claim_responder_sms"]
# The SMS webhook stores the message and queues its recording on a worker (channels_app.sms.intake); 1 records it
# in the request instead (a single-process setup without workers; the test suite).
SMS_INTAKE_INLINE = env.bool("SMS_INTAKE_INLINE", default=False)
# Incoming-call handlers tried before the voice agent (f(tenant, params) -> TwiML str, or None to pass).
VOICE_INBOUND_HANDLERS = ["escalation.hooks.claim_responder_call"]
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="") or None
OPENAI_MODEL = env("OPENAI_MODEL", default="gpt-4o-mini")
OPENAI_TIMEOUT_SECONDS = env.float("OPENAI_TIMEOUT_SECONDS", default=30.0)
# The agent: "local" (offline slot-filling), "openai" (tool calling) or "auto" (openai when a key is set).
AGENT_BACKEND = env("AGENT_BACKEND", default="auto")
AGENT_MODEL = env("AGENT_MODEL", default="") or OPENAI_MODEL
# Web chat: signed link lifetime (s), message and frame size limits (the frame limit is also daphne's
# --websocket-max-message-size, see callsphere.web), rate limits (per minute).
CHAT_LINK_MAX_AGE = env.int("CHAT_LINK_MAX_AGE", default=24 * 3600)
CHAT_MAX_MESSAGE_CHARS = env.int("CHAT_MAX_MESSAGE_CHARS", default=2000)
CHAT_MAX_FRAME_BYTES = env.int("CHAT_MAX_FRAME_BYTES", default=16384)
CHAT_RATE_LIMIT = env.int("CHAT_RATE_LIMIT", default=20)  # per visitor
CHAT_IP_RATE_LIMIT = env.int("CHAT_IP_RATE_LIMIT", default=40)  # per client IP: visitor ids are free to make
CHAT_TENANT_RATE_LIMIT = env.int("CHAT_TENANT_RATE_LIMIT", default=600)  # per clinic: bounds agent/LLM load
CHAT_FRAME_LIMIT = env.int("CHAT_FRAME_LIMIT", default=120)
CHAT_VERIFY_CODES_PER_TARGET_HOUR = env.int("CHAT_VERIFY_CODES_PER_TARGET_HOUR", default=3)
CHAT_VERIFY_CODES_PER_TENANT_HOUR = env.int("CHAT_VERIFY_CODES_PER_TENANT_HOUR", default=100)
# Voice agent (channels_app.voice): Twilio <Say> voice and language, the per-turn LLM urgency check's timeout
# (a caller is waiting), and who transcribes voicemails: "twilio" (<Record transcribe>) or "openai" (the
# OpenAI-compatible /audio/transcriptions endpoint at OPENAI_BASE_URL, model VOICEMAIL_STT_MODEL).
VOICE_TTS_VOICE = env("VOICE_TTS_VOICE", default="Polly.Joanna")
VOICE_LANGUAGE = env("VOICE_LANGUAGE", default="en-US")
VOICE_LLM_TIMEOUT_SECONDS = env.float("VOICE_LLM_TIMEOUT_SECONDS", default=4.0)
# Triage (conversations.triage): the LLM's second opinion on every inbound message when OPENAI_API_KEY is set
# (TRIAGE_LLM=0 turns it off), within the channel's deadline and at most TRIAGE_LLM_TIMEOUT_SECONDS.
TRIAGE_LLM = env.bool("TRIAGE_LLM", default=True)
TRIAGE_LLM_TIMEOUT_SECONDS = env.float("TRIAGE_LLM_TIMEOUT_SECONDS", default=4.0)
TRIAGE_MODEL = env("TRIAGE_MODEL", default="")
VOICE_TURN_BUDGET_SECONDS = env.float("VOICE_TURN_BUDGET_SECONDS", default=8.0)  # one caller turn; see voice.agent
VOICEMAIL_TRANSCRIBER = env("VOICEMAIL_TRANSCRIBER", default="twilio")
VOICEMAIL_STT_MODEL = env("VOICEMAIL_STT_MODEL", default="whisper-1")
VOICEMAIL_FETCH_TIMEOUT_SECONDS = env.float("VOICEMAIL_FETCH_TIMEOUT_SECONDS", default=20.0)

EMAIL_CONFIG = environ.Env.email_url_config(EMAIL_URL)
vars().update(EMAIL_CONFIG)
# Seconds an SMTP connect/read may block (Django's default is None: a hung server would hang the task).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=15)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="frontdesk@callsphere.localhost")
# Email channel (channels_app.email): inbound size limits, the IMAP poll (a beat task), anymail's settings.
EMAIL_INBOUND_MAX_BYTES = env.int("EMAIL_INBOUND_MAX_BYTES", default=10 * 1024 * 1024)
EMAIL_ATTACHMENT_MAX_BYTES = env.int("EMAIL_ATTACHMENT_MAX_BYTES", default=5 * 1024 * 1024)
EMAIL_IMAP_POLL_SECONDS = env.float("EMAIL_IMAP_POLL_SECONDS", default=60.0)
EMAIL_IMAP_BATCH = env.int("EMAIL_IMAP_BATCH", default=50)
EMAIL_IMAP_TIMEOUT_SECONDS = env.float("EMAIL_IMAP_TIMEOUT_SECONDS", default=30.0)
# IMAP TLS verifies certificates against the system CAs, plus this bundle if set (e.g. a private CA).
EMAIL_IMAP_CA_FILE = env.str("EMAIL_IMAP_CA_FILE", default="")
# Tenant-set IMAP hosts may not resolve to private/loopback addresses (SSRF) unless listed here; ports 143/993 only.
EMAIL_IMAP_ALLOWED_PRIVATE_HOSTS = env.list("EMAIL_IMAP_ALLOWED_PRIVATE_HOSTS", default=[])
EMAIL_IMAP_ALLOWED_PORTS = [int(p) for p in env.list("EMAIL_IMAP_ALLOWED_PORTS", default=["143", "993"])]
# authserv-ids of our own receiving MTA / inbound ESP whose Authentication-Results (RFC 8601) we trust to
# confirm an email sender (DMARC / aligned DKIM pass). Empty: no inbound email sender counts as confirmed.
EMAIL_TRUSTED_AUTHSERV_IDS = env.list("EMAIL_TRUSTED_AUTHSERV_IDS", default=["callsphere.local"] if DEBUG else [])
# ANYMAIL_<NAME> environment variables become ANYMAIL["<NAME>"] (e.g. ANYMAIL_WEBHOOK_SECRET="user:pass",
# ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY, ANYMAIL_POSTMARK_SERVER_TOKEN). Inbound webhooks need WEBHOOK_SECRET.
ANYMAIL = {k[len("ANYMAIL_") :]: v for k, v in env.ENVIRON.items() if k.startswith("ANYMAIL_") and v}
if DEBUG:  # demo convenience (make run + simulate email); production must set ANYMAIL_WEBHOOK_SECRET itself
    ANYMAIL.setdefault(
        "WEBHOOK_SECRET", "callsphere:" + hashlib.sha256(f"inbound-email:{SECRET_KEY}".encode()).hexdigest()[:32]
    )
CELERY_BEAT_SCHEDULE["email-imap-poll"] = {
    "task": "channels_app.email.tasks.email_poll_all",
    "schedule": EMAIL_IMAP_POLL_SECONDS,
    "options": {"expires": EMAIL_IMAP_POLL_SECONDS},
}

# --- DRF / OpenAPI -----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "conversations.api.exceptions.api_exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Per-tenant API keys (``Authorization: Bearer csk_…``), then staff sessions (admin users with a tenant).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "conversations.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "callsphere API",
    "DESCRIPTION": "Exports of the unified interaction log (call_logs), Customer 360 and SLA reports.",
    "VERSION": "1.0.0",
    "ENUM_NAME_OVERRIDES": {"ChannelEnum": "conversations.models.Channel.choices"},
}

# --- outbound webhooks (conversations.webhooks) and the warehouse export ------------------------------------
# Hosts (names, IPs or CIDRs) that may resolve to private/loopback/link-local addresses; empty = refuse all.
WEBHOOK_ALLOWED_PRIVATE_HOSTS = env.list("WEBHOOK_ALLOWED_PRIVATE_HOSTS", default=[])
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=DEBUG)  # else endpoints must be https
# Seconds to wait before each retry (Standard Webhooks / Svix schedule: 5s, 5m, 30m, 2h, 5h, 10h, 10h).
WEBHOOK_RETRY_SCHEDULE = [
    int(s) for s in env.list("WEBHOOK_RETRY_SCHEDULE", default=["5", "300", "1800", "7200", "18000", "36000", "36000"])
]
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=5.0)
WEBHOOK_READ_TIMEOUT = env.float("WEBHOOK_READ_TIMEOUT", default=15.0)
# Wall-clock bound of one whole attempt (a receiver trickling bytes cannot hold a worker longer than this).
WEBHOOK_TOTAL_TIMEOUT = env.float("WEBHOOK_TOTAL_TIMEOUT", default=30.0)
# Soft time limit of webhook_deliver (the hard limit is 15 s later; its lease that + identity.leases.SKEW).
WEBHOOK_TASK_SOFT_TIME_LIMIT = env.float("WEBHOOK_TASK_SOFT_TIME_LIMIT", default=45.0)
# At most this many due deliveries are queued per sweep (every 5 s); the rest wait for the next sweep.
WEBHOOK_SWEEP_BATCH = env.int("WEBHOOK_SWEEP_BATCH", default=100)
# Parquet increments of call_logs go here (a local directory or s3://bucket/prefix); empty = export disabled.
WAREHOUSE_EXPORT_URI = env("WAREHOUSE_EXPORT_URI", default="")
CELERY_BEAT_SCHEDULE.update(
    {
        "webhook-retries": {
            "task": "conversations.webhooks.tasks.webhook_retry_due",
            "schedule": 5.0,
            "options": {"expires": 5.0},
        },
        "warehouse-export": {
            "task": "conversations.warehouse.tasks.warehouse_export",
            "schedule": env.float("WAREHOUSE_EXPORT_INTERVAL", default=900.0),
            "options": {"expires": env.float("WAREHOUSE_EXPORT_INTERVAL", default=900.0)},
        },
    }
)

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"redact_link_secrets": {"()": "callsphere.redaction.RedactLinkSecrets"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_link_secrets"]}
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # httpx logs every request URL at INFO: outbound webhook URLs may carry a customer's secret query string
    "loggers": {
        "pgserver": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # Django's own defaults give these loggers handlers of their own (a DEBUG console, runserver's), which
        # would print "Not Found: /a/<token>" unfiltered: route them through the redacting handler only.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# Default per-tenant values (a tenant row can override each).
DEFAULT_STATE_TTL = timedelta(days=30)
DEFAULT_SMS_IDLE_WINDOW = timedelta(minutes=30)
DEFAULT_CONVERSATION_QUIET_PERIOD = timedelta(hours=24)  # then conversation.closed goes out (issue 18)

# --- staff accounts fit for PHI, headers, secrets (privacy and compliance) ------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("PASSWORD_MIN_LENGTH", default=10)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Idle timeout: a staff session ends after this many seconds without a request (sliding: every request renews).
SESSION_COOKIE_AGE = env.int("SESSION_IDLE_SECONDS", default=30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
MIDDLEWARE.insert(1, "identity.middleware.PermissionsPolicyMiddleware")
CELERY_BEAT_SCHEDULE["purge-expired-state"] = {  # retention: expired session state is deleted, not just hidden
    "task": "conversations.tasks.purge_expired_state",
    "schedule": 300.0,
    "options": {"expires": 300.0},
}
# (the weak-SECRET_KEY check is with the required variables at the top)

# --- CRM connectors (crm/): OAuth apps registered with each vendor; a tenant connects in admin ----------------
CRM_HUBSPOT_CLIENT_ID = env("CRM_HUBSPOT_CLIENT_ID", default="")
CRM_HUBSPOT_CLIENT_SECRET = env("CRM_HUBSPOT_CLIENT_SECRET", default="")
# Base URLs of the vendors' APIs; only a local stub in tests changes them.
CRM_HUBSPOT_API_BASE = env("CRM_HUBSPOT_API_BASE", default="https://api.hubapi.com").rstrip("/")
CRM_HUBSPOT_AUTHORIZE_URL = env("CRM_HUBSPOT_AUTHORIZE_URL", default="https://app.hubspot.com/oauth/authorize")
CRM_SALESFORCE_CLIENT_ID = env("CRM_SALESFORCE_CLIENT_ID", default="")
CRM_SALESFORCE_CLIENT_SECRET = env("CRM_SALESFORCE_CLIENT_SECRET", default="")
CRM_SALESFORCE_LOGIN_URL = env("CRM_SALESFORCE_LOGIN_URL", default="https://login.salesforce.com").rstrip("/")
CRM_SALESFORCE_API_VERSION = env("CRM_SALESFORCE_API_VERSION", default="62.0")
CRM_ZOHO_CLIENT_ID = env("CRM_ZOHO_CLIENT_ID", default="")
CRM_ZOHO_CLIENT_SECRET = env("CRM_ZOHO_CLIENT_SECRET", default="")
CRM_ZOHO_ACCOUNTS_URL = env("CRM_ZOHO_ACCOUNTS_URL", default="https://accounts.zoho.com").rstrip("/")
CRM_TIMEOUT_SECONDS = env.float("CRM_TIMEOUT_SECONDS", default=15.0)
# Seconds before each retry of a failed delivery (429 / 5xx / timeouts), ±10 % jitter, never sooner than Retry-After.
CRM_RETRY_SCHEDULE = [int(s) for s in env.list("CRM_RETRY_SCHEDULE", default=["30", "300", "1800", "7200", "21600"])]
CRM_SWEEP_BATCH = env.int("CRM_SWEEP_BATCH", default=100)
CELERY_BEAT_SCHEDULE["crm-redrive"] = {  # re-queues due CRM deliveries and ones whose worker died (crm.services)
    "task": "crm.tasks.crm_redrive",
    "schedule": 30.0,
    "options": {"expires": 30.0},
}

# --- operator signals (callsphere.metrics, observability.metrics) ------------------------------------
# /metrics answers only "Authorization: Bearer <METRICS_TOKEN>"; unset, the endpoint does not exist (404).
# Multi-process values (web + Celery) need PROMETHEUS_MULTIPROC_DIR set in the environment of every process.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
MIDDLEWARE.insert(0, "callsphere.metrics.WebhookLatencyMiddleware")  # first: the whole request is timed
# Structured logs: LOG_FORMAT=json prints one JSON object per line (python-json-logger) with the request id
# (django-guid: the X-Request-ID a proxy sent, if a UUID, else a new one; returned in the response header and
# carried into the Celery tasks a request queues). The link-secret redaction applies to both formats.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
INSTALLED_APPS.append("django_guid")
MIDDLEWARE.insert(0, "django_guid.middleware.guid_middleware")
DJANGO_GUID = {
    "GUID_HEADER_NAME": "X-Request-ID",
    "VALIDATE_GUID": True,
    "EXPOSE_HEADER": False,
    # json: Celery workers log through this LOGGING too (else Celery's own plain format)
    "INTEGRATIONS": [CeleryIntegration(use_django_logging=LOG_FORMAT == "json")],
}
LOGGING["filters"]["request_id"] = {"()": "django_guid.log_filters.CorrelationId", "correlation_id_field": "request_id"}
LOGGING["formatters"]["json"] = {
    "()": "callsphere.redaction.JsonLogFormatter",  # python-json-logger, fields allow-listed
    "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
}
LOGGING["handlers"]["console"]["formatter"] = "json" if LOG_FORMAT == "json" else "plain"
LOGGING["handlers"]["console"]["filters"] = ["request_id", "redact_link_secrets"]
LOGGING["loggers"]["django_guid"] = {"level": "WARNING"}  # one INFO line per request and per task otherwise
# Optional error reporting (callsphere.errors): Sentry, PHI scrubbed before send; unset = off.
SENTRY_DSN = env("SENTRY_DSN", default="")
if SENTRY_DSN:
    from callsphere.errors import init_sentry

    init_sentry(dsn=SENTRY_DSN, environment=env("SENTRY_ENVIRONMENT", default="production"))
# Login lockout (django-axes): LOGIN_FAILURE_LIMIT wrong passwords for one username from one address lock that
# pair out for LOGIN_LOCKOUT_MINUTES (429, identity.accounts.axes_lockout_response); a success resets the count.
INSTALLED_APPS += ["axes", "django_otp", "django_otp.plugins.otp_totp"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "identity.accounts.axes_lockout_response"
# Two-factor (django-otp TOTP): superusers and clinic admins always (ADMIN_OTP_REQUIRED), staff when their tenant
# sets require_staff_otp; enrolment and verification at /admin/otp/ (identity.accounts, identity.otp_views).
ADMIN_OTP_REQUIRED = env.bool("ADMIN_OTP_REQUIRED", default=True)
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="callsphere")
_auth_at = MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware")
MIDDLEWARE[_auth_at + 1 : _auth_at + 1] = [
    "django_otp.middleware.OTPMiddleware",
    "identity.accounts.StaffOTPMiddleware",
]
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
# Content-Security-Policy (django-csp 4): scripts only from us or inline with the per-response nonce
# ({{ request.csp_nonce }}); styles may be inline (admin and the widget's shadow DOM set them); no framing.
from csp.constants import NONCE, NONE, SELF  # noqa: E402

MIDDLEWARE.insert(
    MIDDLEWARE.index("identity.middleware.PermissionsPolicyMiddleware") + 1, "csp.middleware.CSPMiddleware"
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- appointment reminders (channels_app.reminders; lead times and quiet hours per tenant in admin) ---
CELERY_BEAT_SCHEDULE["appointment-reminders"] = {
    "task": "channels_app.reminders.send_due_reminders",
    "schedule": 60.0,
    "options": {"expires": 60.0},
}
CELERY_BEAT_SCHEDULE["record-no-shows"] = {
    "task": "channels_app.reminders.record_no_shows",
    "schedule": 300.0,
    "options": {"expires": 300.0},
}

# Retention (identity.retention): each tenant's periods for transcripts, recordings, received emails and the audit,
# applied daily at RETENTION_PURGE_HOUR (UTC); rows are purged RETENTION_BATCH at a time, at most RETENTION_MAX_ROWS
# per kind, tenant and run (the rest on the next run).
from celery.schedules import crontab  # noqa: E402

RETENTION_BATCH = env.int("RETENTION_BATCH", default=500)
RETENTION_MAX_ROWS = env.int("RETENTION_MAX_ROWS", default=100_000)
CELERY_BEAT_SCHEDULE["retention-purge"] = {
    "task": "identity.tasks.retention_purge_all",
    "schedule": crontab(hour=env.int("RETENTION_PURGE_HOUR", default=3), minute=17),
    "options": {"expires": 6 * 3600},
}
CELERY_BEAT_SCHEDULE["recording-deletions-redrive"] = {  # recordings erased/purged here, still at Twilio
    "task": "channels_app.voice.tasks.recording_deletions_redrive_task",
    "schedule": 300.0,
    "options": {"expires": 240},
}

# Patient-facing text in the patient's language (conversations.language): catalogs in locale/<code>/LC_MESSAGES,
# compiled in Python by scripts/compile_messages.py (the .mo files are committed; no gettext binaries needed).
LOCALE_PATHS = [BASE_DIR / "locale"]
