"""A minimal monolith: SQLite, one app (reviews) and the llm-batch integration. The llm-batch settings come
from the environment, as a real deployment's secrets do."""

import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "llm_batch_client.django",
    "reviews",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "monolith.urls"
WSGI_APPLICATION = "monolith.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DATABASE", str(BASE_DIR / "db.sqlite3")),
        # The command and the webhook (in the server process) both write: wait for the other's lock.
        "OPTIONS": {"timeout": 30},
    }
}
if os.environ.get("EXAMPLE_DATABASE_URL", "").startswith("postgresql://"):  # PostgreSQL (pip install psycopg)
    _database = urlsplit(os.environ["EXAMPLE_DATABASE_URL"])
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _database.path.lstrip("/"),
        "USER": _database.username or "",
        "PASSWORD": _database.password or "",
        "HOST": _database.hostname or "",
        "PORT": str(_database.port or ""),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

# -- llm-batch -----------------------------------------------------------------------------------------------
LLM_BATCH_URL = os.environ.get("LLM_BATCH_URL", "http://127.0.0.1:8000")
LLM_BATCH_TOKEN = os.environ.get("LLM_BATCH_TOKEN")
LLM_BATCH_WEBHOOK_SECRET = os.environ.get("LLM_BATCH_WEBHOOK_SECRET")  # the service's WEBHOOK_SECRET, whsec_...
LLM_BATCH_CALLBACK_URL = os.environ.get("LLM_BATCH_CALLBACK_URL")  # e.g. http://127.0.0.1:8001/hooks/llm-batch/webhook/
# How often --poll asks the service while it waits: without a webhook, and with one (a backstop).
LLM_BATCH_POLL_SECONDS = float(os.environ.get("LLM_BATCH_POLL_SECONDS", "5"))
LLM_BATCH_WEBHOOK_POLL_SECONDS = float(os.environ.get("LLM_BATCH_WEBHOOK_POLL_SECONDS", "60"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"llm_batch_client": {"handlers": ["console"], "level": "INFO"}},
}
