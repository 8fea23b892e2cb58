"""Settings for the image search service, read from the environment.

With no environment at all this is the embedded single-machine mode: SQLite,
an embedded Chroma directory and tasks run in-process. Setting REDIS_URL,
DATABASE_URL and CHROMA_URL gives the full stack (web + Celery workers + a
Chroma server). DJANGO_ENV=production turns on the strict settings and makes
missing secrets a crash.
"""

from __future__ import annotations

from pathlib import Path

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from config.env import (
    database_from_url,
    email_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_json_object,
    env_list,
    env_path,
    env_rate,
    env_required,
    env_str,
)
from config.envfile import env_file
from config.storage import s3_storage

django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
ENV_FILE = env_file()
if ENV_FILE is not None and ENV_FILE.is_file():
    load_dotenv(ENV_FILE, override=False)  # what `make run` remembered; the environment wins
DATA_DIR = env_path("DATA_DIR", BASE_DIR / "var")

DJANGO_ENV = env_str("DJANGO_ENV", "development")
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"DJANGO_ENV={DJANGO_ENV!r}; use 'development' or 'production'.")
PRODUCTION = DJANGO_ENV == "production"

if PRODUCTION:
    SECRET_KEY = env_required("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set in production.")
else:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "django-insecure-development-only-key-do-not-use-in-production")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
# Old keys, still accepted after a rotation: sessions, password resets, sealed webhook secrets.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", [])
DEBUG = env_bool("DJANGO_DEBUG", False)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "vectors",
    "tenants",
    "webhooks",
    "ingestion",
    "search",
]

MIDDLEWARE = [
    "config.errors.ApiErrorsAsJson",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "search.context_processors.embedding_model",
                "tenants.context_processors.memberships",
            ],
        },
    },
]

if not env_str("DATABASE_URL"):
    DATA_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": database_from_url(env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed logins and failed API token checks allowed per client address within the window.
AUTH_FAILURE_LIMIT = env_int("AUTH_FAILURE_LIMIT", 10, minimum=1)
AUTH_FAILURE_WINDOW_SECONDS = env_int("AUTH_FAILURE_WINDOW_SECONDS", 900, minimum=1)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "tenants:home"
LOGOUT_REDIRECT_URL = "login"

# --- Mail (invitations, password resets) ------------------------------------------------------
# EMAIL_URL: smtp://user:pass@host:port, smtp+tls://… (STARTTLS), smtps://… (TLS); empty writes each
# message as a file under $DATA_DIR/mail/ (the pages that send mail say so).
_MAIL = email_from_url(env_str("EMAIL_URL"), default_file_path=DATA_DIR / "mail")
EMAIL_BACKEND = _MAIL["EMAIL_BACKEND"]
EMAIL_FILE_PATH = _MAIL["EMAIL_FILE_PATH"]
EMAIL_HOST = _MAIL["EMAIL_HOST"]
EMAIL_PORT = _MAIL["EMAIL_PORT"]
EMAIL_HOST_USER = _MAIL["EMAIL_HOST_USER"]
EMAIL_HOST_PASSWORD = _MAIL["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS = _MAIL["EMAIL_USE_TLS"]
EMAIL_USE_SSL = _MAIL["EMAIL_USE_SSL"]
EMAIL_TIMEOUT = _MAIL["EMAIL_TIMEOUT"]
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Image search <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# An invitation's link works once, for this many days after it was (re-)sent.
INVITATION_MAX_AGE_DAYS = env_int("INVITATION_MAX_AGE_DAYS", 7, minimum=1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", DATA_DIR / "static")
if not PRODUCTION:  # WhiteNoise serves from the finders here, but warns at every start if the folder is missing
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Originals, thumbnails and derivatives in an S3-compatible store (AWS S3, MinIO, Garage, Ceph RGW...)
# when S3_BUCKET is set: private objects under a per-tenant prefix, never overwritten, read and written
# through Django's storage API by web and workers alike, so they need not share a disk. The views that
# check the tenant still serve them. Without S3_BUCKET the local disk (MEDIA_ROOT) is the store.
S3_BUCKET = env_str("S3_BUCKET")
if S3_BUCKET:
    STORAGES["default"] = s3_storage(
        bucket=S3_BUCKET,
        endpoint_url=env_str("S3_ENDPOINT_URL"),
        region=env_str("S3_REGION"),
        access_key=env_str("AWS_ACCESS_KEY_ID"),
        secret_key=env_str("AWS_SECRET_ACCESS_KEY"),
    )
# WhiteNoise serves the admin's assets in every mode, so gunicorn needs nothing in front of it.
WHITENOISE_USE_FINDERS = True
# Media is never served as static files: every image goes through a view that checks the tenant.
MEDIA_ROOT = env_path("MEDIA_ROOT", DATA_DIR / "media")
MEDIA_URL = "/media-not-served/"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Background work ------------------------------------------------------------------------
# Who embeds uploaded images: `celery` (workers through the Redis broker: the full stack), `thread`
# (a background thread of the web process: the single-process default, uploads return at once), or
# `inline` (inside the request that commits them: the tests). TASKS_IN_PROCESS=1/0 is the older
# spelling of inline/celery.
_legacy_in_process = env_str("TASKS_IN_PROCESS")
EMBED_RUNNER = env_choice(
    "EMBED_RUNNER",
    ("celery", "thread", "inline"),
    ("inline" if env_bool("TASKS_IN_PROCESS", False) else "celery")
    if _legacy_in_process
    else ("celery" if REDIS_URL else "thread"),
)
# How often the background thread looks for pending images it was not told about (an import run
# by another process, images left over from a restart).
EMBED_POLL_SECONDS = env_float("EMBED_POLL_SECONDS", 2.0, minimum=0.1)

# --- Celery -----------------------------------------------------------------------------------
# Without a broker the tasks run in-process, right after the upload's transaction commits.
CELERY_TASK_ALWAYS_EAGER = EMBED_RUNNER != "celery"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task whose worker died unacknowledged (killed, out of memory) is delivered again once this many
# seconds have passed since its delivery, when a worker (re)starts or sweeps. Keep it above the longest
# task plus the longest retry countdown (300 s): production keeps 3600. Tests lower it to a few seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-pending-images": {
        "task": "ingestion.tasks.requeue_stale_assets",
        "schedule": env_int("STALE_SWEEP_SECONDS", 300, minimum=10),
    },
    "resume-interrupted-bulk-actions": {"task": "ingestion.tasks.resume_bulk_actions", "schedule": 120},
    "resume-interrupted-reindex": {"task": "ingestion.tasks.resume_reindex", "schedule": 120},
    "send-due-webhook-deliveries": {"task": "webhooks.tasks.send_due_deliveries", "schedule": 30},
}

# --- Chroma -----------------------------------------------------------------------------------
# CHROMA_URL (a `chroma run` server) is required whenever web and workers are separate processes;
# the embedded directory serves the single-process default only.
CHROMA_URL = env_str("CHROMA_URL")
CHROMA_PATH = env_path("CHROMA_PATH", DATA_DIR / "chroma")
# Beyond one node: extra headers for every request (a JSON object, e.g. an auth proxy's), Chroma's
# token (sent as x-chroma-token, as Chroma Cloud expects), and the tenant and database of distributed
# Chroma or Chroma Cloud. https in CHROMA_URL turns TLS on.
CHROMA_HEADERS = env_json_object("CHROMA_HEADERS")
CHROMA_API_KEY = env_str("CHROMA_API_KEY")
CHROMA_TENANT = env_str("CHROMA_TENANT", "default_tenant")
CHROMA_DATABASE = env_str("CHROMA_DATABASE", "default_database")
if CHROMA_URL == "" and not CELERY_TASK_ALWAYS_EAGER:
    raise ImproperlyConfigured(
        "Workers run in separate processes (REDIS_URL is set), but Chroma is embedded: the embedded "
        "client is not safe for several processes. Run `chroma run --path DIR --port 8000` and set "
        "CHROMA_URL=http://localhost:8000."
    )

# --- Embedding model --------------------------------------------------------------------------
CLIP_MODEL = env_str("CLIP_MODEL", "ViT-B-32")
# A pretrained tag known to open_clip (downloaded on first use), a path to a local checkpoint file,
# or "random" for untrained weights (every page then says results are meaningless).
CLIP_PRETRAINED = env_str("CLIP_PRETRAINED", "laion2b_s34b_b79k")
CLIP_DEVICE = env_str("CLIP_DEVICE", "auto")
CLIP_RANDOM_SEED = env_int("CLIP_RANDOM_SEED", 0)
# auto: bf16 on CUDA (fp16 where bf16 is missing) and on CPUs with AMX or AVX512-BF16, else fp32;
# or fp32, fp16, bf16.
CLIP_PRECISION = env_str("CLIP_PRECISION", "auto")
# Images per forward pass; 0 picks 32 on CPU and 256 on CUDA.
CLIP_BATCH_SIZE = env_int("CLIP_BATCH_SIZE", 0, minimum=0)
# Images claimed per embedding task.
EMBED_BATCH_SIZE = env_int("EMBED_BATCH_SIZE", 32, minimum=1)
# Large JPEGs are decoded at the smallest DCT scale that keeps this many pixels on the shorter side;
# 0 means the model's input size (224 for ViT-B-32). Larger values cost decode time for no gain.
EMBED_DECODE_MIN_SIDE = env_int("EMBED_DECODE_MIN_SIDE", 0, minimum=0)
# Threads that decode and preprocess images ahead of the forward passes; 0 means one per core.
EMBED_DECODE_THREADS = env_int("EMBED_DECODE_THREADS", 0, minimum=0)
# Attempts before an image whose processing keeps killing its worker is marked failed. At least 2:
# the images that shared a batch with a poison image spend their first attempt in the crash.
EMBED_MAX_ATTEMPTS = env_int("EMBED_MAX_ATTEMPTS", 5, minimum=2)
# Images left pending or processing longer than this (broker down, worker killed) are queued again by
# the periodic sweep (celery beat, every STALE_SWEEP_SECONDS).
EMBED_STALE_AFTER_SECONDS = env_int("EMBED_STALE_AFTER_SECONDS", 600, minimum=10)

# --- Search -----------------------------------------------------------------------------------
SEARCH_DEFAULT_LIMIT = env_int("SEARCH_DEFAULT_LIMIT", 24, minimum=1)
SEARCH_MAX_LIMIT = env_int("SEARCH_MAX_LIMIT", 200, minimum=1)
# Cosine distance within which two images are near-duplicates (README: measured on copies of photographs).
NEAR_DUPLICATE_DISTANCE = env_float("NEAR_DUPLICATE_DISTANCE", 0.05, minimum=0.0)
# How long a process trusts what it read of the active model before reading it again: a switch made by
# `manage.py reindex` reaches running web servers and workers within this time, without a restart.
VECTOR_SPACES_REFRESH_SECONDS = env_float("VECTOR_SPACES_REFRESH_SECONDS", 2.0, minimum=0.0)
# Auto-tags: an image gets a label of its tenant's vocabulary when the cosine similarity of its vector
# to the text "a photo of a {label}" reaches this. CLIP models score a fitting caption about
# 0.28-0.35 and an unrelated one 0.10-0.20 (README, "Auto-tags"); raise it for fewer, surer labels.
AUTO_TAG_MIN_SCORE = env_float("AUTO_TAG_MIN_SCORE", 0.25, minimum=-1.0)

# --- Uploads ----------------------------------------------------------------------------------
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 30 * 1024 * 1024, minimum=1024)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 100_000_000, minimum=1)
UPLOAD_MAX_FILES = env_int("UPLOAD_MAX_FILES", 200, minimum=1)
TENANT_DEFAULT_QUOTA_BYTES = env_int("TENANT_DEFAULT_QUOTA_BYTES", 10 * 1024**3, minimum=0)
THUMBNAIL_SIZE = env_int("THUMBNAIL_SIZE", 512, minimum=64)
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES
# Files are spooled to disk above this size while a request arrives; validation then reads one file
# at a time into memory (at most UPLOAD_MAX_BYTES). A file over UPLOAD_MAX_BYTES is refused while it
# arrives, before the rest of it is stored anywhere.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "ingestion.uploadhandlers.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Requests (an upload counts one per file) per API key, and per tenant for all its keys together.
API_RATE_LIMIT = env_rate("API_RATE_LIMIT", "1200/minute")
API_TENANT_RATE_LIMIT = env_rate("API_TENANT_RATE_LIMIT", "6000/minute")

# --- Webhooks ---------------------------------------------------------------------------------
# Deliveries to loopback, private, link-local (metadata) and other non-public addresses are refused
# unless this is on (tests; a deployment whose receivers are inside its own network).
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Image search API",
    "DESCRIPTION": "Upload, list, delete and search one tenant's images. Authenticate with "
    "`Authorization: Token <key>` (or `Bearer <key>`); a key belongs to one tenant and acts with its user's role.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set in the schema, whichever field carries it.
    "ENUM_NAME_OVERRIDES": {
        "ImageStatusEnum": "ingestion.models.AssetStatus",
        "WebhookEventEnum": "webhooks.models.EventType",
        "DeliveryStatusEnum": "webhooks.models.DeliveryStatus",
        "RoleEnum": "tenants.models.Role",
    },
}

if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"chromadb": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}
