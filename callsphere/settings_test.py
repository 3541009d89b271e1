"""Test settings: the same real PostgreSQL and Redis as production, isolated per test run.

- PostgreSQL: ``DATABASE_URL`` if set, else the embedded server (started here: the production settings
  never start one); pytest-django creates a test database whose
  name carries this process id, so concurrent runs never share one.
- Redis: ``REDIS_URL`` if set, else a private embedded Redis started for this run in a temporary directory and
  shut down at exit, so a run's queues and channel groups are its own.
- Media (stored raw emails): ``MEDIA_ROOT`` is a temporary directory of this run, removed at exit, so what
  the test process and the daphne / Celery processes it starts (through the ``MEDIA_ROOT`` environment
  variable) store never piles up in ``./.data/media``.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from callsphere import embedded

os.environ.setdefault("SECRET_KEY", "test-only-key-not-for-production-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ["DEBUG"] = "0"  # tests run production settings, whatever a developer's .env says
os.environ.setdefault("SMS_BACKEND", "providers.sms.LocmemSmsBackend")
os.environ.setdefault("VOICE_BACKEND", "providers.voice.LocmemVoiceBackend")
os.environ.setdefault("EMAIL_URL", "consolemail://")
os.environ.setdefault("PUBLIC_BASE_URL", "https://clinic.example.com")
# a fixed test-only Fernet key: the daphne / Celery processes a test starts decrypt what this process stored
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdC1vbmx5LWZpZWxkLWtleS1ub3QtZm9yLXByb2Q=")
if not os.environ.get("DATABASE_URL"):
    _data_dir = Path(os.environ.get("CALLSPHERE_DATA_DIR") or Path(__file__).resolve().parent.parent / ".data")
    os.environ["DATABASE_URL"] = embedded.ensure_postgres(_data_dir)
if not os.environ.get("REDIS_URL"):
    _redis_dir = Path(tempfile.mkdtemp(prefix="cs-redis-", dir="/tmp"))
    os.environ["REDIS_URL"] = embedded.ensure_redis(_redis_dir, persist=False)

    def _stop_private_redis() -> None:
        embedded.stop_redis(_redis_dir)
        shutil.rmtree(_redis_dir, ignore_errors=True)

    atexit.register(_stop_private_redis)

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # this run's metric files, shared with its daphne / workers
    _metrics_dir = Path(tempfile.mkdtemp(prefix="cs-metrics-", dir="/tmp"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)
    atexit.register(shutil.rmtree, _metrics_dir, ignore_errors=True)

from callsphere.settings import *  # noqa: F403
from callsphere.settings import DATABASES

DATABASES["default"]["TEST"] = {"NAME": f"test_callsphere_{os.getpid()}"}
SMS_BACKEND = "providers.sms.LocmemSmsBackend"
# most tests check what the webhook recorded right after it answers; tests/sms/test_intake.py runs the queued path
SMS_INTAKE_INLINE = True
VOICE_BACKEND = "providers.voice.LocmemVoiceBackend"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
PUBLIC_BASE_URL = "https://clinic.example.com"
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="cs-media-", dir="/tmp"))
os.environ["MEDIA_ROOT"] = str(MEDIA_ROOT)  # the daphne / Celery processes a test starts store there too
atexit.register(shutil.rmtree, MEDIA_ROOT, ignore_errors=True)
OPENAI_API_KEY = ""
