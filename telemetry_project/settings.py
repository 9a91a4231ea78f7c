"""Settings for the telemetry backend, read from the environment (see docker/.env.example)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from telemetry_project.env import (
    env,
    env_bool,
    env_choice,
    env_database,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_rate,
    env_redis_url,
    env_str,
    env_time_zone,
)
from workers.schedule import beat_schedule

BASE_DIR = Path(__file__).resolve().parent.parent
# A local .env (written by `make setup`, never committed) fills in what the real environment does not set.
env.read_env(BASE_DIR / ".env")

DEBUG = env_bool("DEBUG", False)
# The development default keeps `make run` working on a fresh machine; production must set its own.
SECRET_KEY = env_str("SECRET_KEY", "insecure-development-key-change-me" if DEBUG else None)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# HTTPS (docs/operations.md "Production settings"; on in docker/compose.yml). Off by default so that `make run`
# works over plain HTTP on localhost. apps/core/checks.py refuses a weak SECRET_KEY whenever DEBUG is off.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Container health checks and in-network scrapers speak plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^health(/ready)?$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# The header a TLS-terminating proxy sets to "https" (e.g. X-Forwarded-Proto); empty: none is trusted. Only
# behind a proxy that always sets or strips it, or clients could claim HTTPS.
_proxy_ssl_header = env_str("SECURE_PROXY_SSL_HEADER", "")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "django_prometheus",
    "axes",
    "apps.core",
    "apps.accounts",
    "apps.locations",
    "apps.devices",
    "apps.thresholds",
    "apps.anomaly",
    "apps.deadletters",
    "apps.ingest",
    "apps.alerts",
    "apps.notifications",
    "apps.aggregates",
    "apps.stats",
    "apps.mqtt",
    "apps.influx",
    "apps.commands",
    "apps.sparkplug",
    "apps.operations",
    "apps.dashboard",
    "apps.demo",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "apps.operations.request_id.RequestIdMiddleware",
    # Before anything that reads a body (CSRF reads forms): bodies over their view's limit are refused unread.
    "apps.core.body_limit.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Answers the login pages' lockouts (429); after authentication, so it sees every login attempt's outcome.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "telemetry_project.urls"
WSGI_APPLICATION = "telemetry_project.wsgi.application"
ASGI_APPLICATION = "telemetry_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {"default": env_database("DATABASE_URL", "postgres://postgres@localhost:5432/telemetry")}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME", "test_telemetry")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_redis_url("REDIS_URL", "redis://localhost:6379/0")
# Without Redis the web side goes on (docs/operations.md, Redis outages): every Redis call gives up after
# REDIS_TIMEOUT_S, and after a failure a process leaves Redis alone for REDIS_RETRY_AFTER_S before trying again.
REDIS_TIMEOUT_S = env_float("REDIS_TIMEOUT_S", 2.0, minimum=0.1)
REDIS_RETRY_AFTER_S = env_float("REDIS_RETRY_AFTER_S", 5.0, minimum=0)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "telemetry",
        "OPTIONS": {"socket_connect_timeout": REDIS_TIMEOUT_S, "socket_timeout": REDIS_TIMEOUT_S},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Lets the development server and tests serve admin assets without collectstatic.
WHITENOISE_USE_FINDERS = True
# Front-end libraries installed by `npm ci` (package.json), served as static files: vendor/chart.js/...
STATICFILES_DIRS = [("vendor/chart.js", BASE_DIR / "node_modules" / "chart.js" / "dist")]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))

# --- REST API -------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ExpiringTokenAuthentication",
        "apps.devices.authentication.DeviceKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.accounts.permissions.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "apps.core.filters.FilterBackend",
        "apps.core.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "apps.core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DATETIME_FORMAT": "iso-8601",
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.operations.throttling.TokenRateThrottle",
        "apps.operations.throttling.DeviceRateThrottle",
    ],
}

# --- Logins and tokens (apps.accounts; docs/operations.md "Access") ----------------------------------------------
# Password logins (the token endpoint, the admin, /ops/login/) are throttled by django-axes: this many failed
# logins from one client address, or for one username, lock that address or username out for
# LOGIN_LOCKOUT_S seconds (429 with Retry-After); each attempt while locked out starts the wait again.
# LOGIN_FAILURE_LIMIT=0 turns the throttle off.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=0)
LOGIN_LOCKOUT_S = env_int("LOGIN_LOCKOUT_S", 900, minimum=1)
# Reverse proxies in front of the web process that append the client's address to X-Forwarded-For (0: the
# address is the connection's own). Set it to exactly the number of proxies, or clients can pick their address.
LOGIN_TRUSTED_PROXIES = env_int("LOGIN_TRUSTED_PROXIES", 0, minimum=0)
# API tokens older than this many days are refused (401); the token endpoint then issues a new one. 0: never.
API_TOKEN_TTL_DAYS = env_int("API_TOKEN_TTL_DAYS", 0, minimum=0)

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = LOGIN_FAILURE_LIMIT > 0
AXES_FAILURE_LIMIT = max(LOGIN_FAILURE_LIMIT, 1)
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_LOCKOUT_S)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # each counted on its own
AXES_HANDLER = "apps.accounts.login_throttling.FailOpenCacheHandler"
AXES_CACHE = "default"  # the shared Redis cache, like the API's rate limits
AXES_CLIENT_IP_CALLABLE = "apps.accounts.login_throttling.login_client_ip"
AXES_USERNAME_CALLABLE = "apps.accounts.login_throttling.login_username"
AXES_LOCKOUT_CALLABLE = "apps.accounts.login_throttling.lockout_response"
# The cache handler keeps no rows, so axes' admin pages and access log would stay empty.
AXES_ENABLE_ADMIN = False
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False  # no banner on every command; failures and lockouts are still logged

SPECTACULAR_SETTINGS = {
    "TITLE": "Telemetry API",
    "DESCRIPTION": (
        "Readings in, configuration, real-time status and history out. Authenticate people and integrations with "
        "`Authorization: Token <token>` (from `POST /api/v1/auth/token/`) and devices with "
        '`Authorization: Device <ingest key>`. Every 4xx answer has the shape `{"detail": ..., "errors": {...}}`, '
        "except those of the InfluxDB write API (`/api/v2/write`), which has InfluxDB's."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "DeviceStatusEnum": "apps.devices.models.Device.Status",
        "ConnectionStatusEnum": "apps.devices.models.Device.ConnectionStatus",
        "LocationKindEnum": "apps.locations.models.Location.Kind",
        "BatchStatusEnum": "apps.ingest.models.IngestBatch.Status",
        "RealtimeStatusEnum": "apps.ingest.selectors.RealtimeStatus.choices",
    },
}

# --- Celery ---------------------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_redis_url("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (Queue("ingest"), Queue("alerts"), Queue("default"), Queue("exports"))
CELERY_TASK_ROUTES = {
    "ingest.*": {"queue": "ingest"},
    "alerts.*": {"queue": "alerts"},
    "notifications.*": {"queue": "alerts"},
    # Export jobs run for minutes: a queue of their own, so ingest and alerts never wait behind them.
    "aggregates.run_export": {"queue": "exports"},
    "aggregates.*": {"queue": "default"},
    "devices.*": {"queue": "default"},
    "mqtt.*": {"queue": "default"},
    "housekeeping.*": {"queue": "default"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per process: with late acks a prefetched batch would wait behind a slow one.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 45, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 55, minimum=1)
# An unacknowledged message (its worker died) is handed to another worker after this many seconds, so a
# batch whose worker vanished is redelivered within about a minute. A task still running when it passes
# would be delivered twice, and so would a countdown/eta further out: time limits and the retry backoff cap
# must stay below it (checked here; docs/ingest.md).
CELERY_VISIBILITY_TIMEOUT_S = env_int("CELERY_VISIBILITY_TIMEOUT_S", 60, minimum=5)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_S,
    "socket_connect_timeout": REDIS_TIMEOUT_S,
}
# Publishing a task must not hold a request up for long when Redis is down: a connect gives up after
# REDIS_TIMEOUT_S and a publish is tried three times in about half a second (Celery's default). The result
# backend would otherwise retry its reconnect 20 times a second apart (20 s) inside every send_task.
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_TIMEOUT_S
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = REDIS_TIMEOUT_S
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_S,
    "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.25, "interval_max": 0.25},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_SEND_TASK_EVENTS = True
# Celery's Django fix-up closes every database connection before and after each task unless this is set: a
# new PostgreSQL backend for every batch. With it, it closes them every this many tasks, and in between the
# connections are kept and checked the way Django checks them between requests (workers/base.py).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=0)
# The worker logs through Django's LOGGING (JSON with request ids) instead of Celery's own handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
TASK_MAX_RETRIES = env_int("TASK_MAX_RETRIES", 5, minimum=0)
TASK_RETRY_BACKOFF_MAX_S = env_int("TASK_RETRY_BACKOFF_MAX_S", 30, minimum=1)
if not CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT < CELERY_VISIBILITY_TIMEOUT_S:
    raise ImproperlyConfigured(
        "Need CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT < CELERY_VISIBILITY_TIMEOUT_S, got "
        f"{CELERY_TASK_SOFT_TIME_LIMIT}, {CELERY_TASK_TIME_LIMIT}, {CELERY_VISIBILITY_TIMEOUT_S}."
    )
if TASK_RETRY_BACKOFF_MAX_S >= CELERY_VISIBILITY_TIMEOUT_S:
    raise ImproperlyConfigured("TASK_RETRY_BACKOFF_MAX_S must be below CELERY_VISIBILITY_TIMEOUT_S.")

# --- Storage --------------------------------------------------------------------------------------------------
TIMESCALEDB = env_choice("TIMESCALEDB", "auto", {"auto", "on", "off"})
TIMESCALEDB_CHUNK_DAYS = env_int("TIMESCALEDB_CHUNK_DAYS", 1, minimum=1)
TIMESCALEDB_COMPRESS_AFTER_DAYS = env_int("TIMESCALEDB_COMPRESS_AFTER_DAYS", 7, minimum=1)
READINGS_RETENTION_DAYS = env_int("READINGS_RETENTION_DAYS", 90, minimum=1)
# On plain PostgreSQL readings are partitioned by UTC day (apps/ingest/partitions.py): an hourly beat makes
# today's partition and this many days' ahead; late data and backfills get theirs from the store step.
READINGS_PARTITIONS_AHEAD_DAYS = env_int("READINGS_PARTITIONS_AHEAD_DAYS", 3, minimum=0)
# Hourly, the primary keys of the day partitions that are over are rebuilt packed (a third smaller); one rebuild
# may take this many seconds (minutes for a day of 86 million readings).
READINGS_COMPACT_TIME_LIMIT_S = env_int("READINGS_COMPACT_TIME_LIMIT_S", 1800, minimum=60)

# --- Ingest ---------------------------------------------------------------------------------------------------
INGEST_MAX_READINGS_PER_REQUEST = env_int("INGEST_MAX_READINGS_PER_REQUEST", 10_000, minimum=1)
# Largest ingest request body, refused with 413 before it is read: by default 512 bytes per reading allowed, far
# more than the verbose shapes take (about 100 bytes a reading), so the reading limit is what clients meet.
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", INGEST_MAX_READINGS_PER_REQUEST * 512, minimum=1024)
# Largest CSV upload to /api/v1/ingest/import/ (about 50 bytes a line); larger files go through import_readings.
INGEST_MAX_IMPORT_BYTES = env_int("INGEST_MAX_IMPORT_BYTES", 32 * 1024 * 1024, minimum=1024)
# Accepted timestamps: from 2000-01-01 to this many seconds after the request arrived; others are rejected.
INGEST_MAX_FUTURE_SKEW_S = env_int("INGEST_MAX_FUTURE_SKEW_S", 300, minimum=0)
# Largest magnitude of a value; beyond it a reading is rejected (value_out_of_range). The default keeps every
# integer exact in a float and any hour's sum far from float8's limit (about 1.8e308).
INGEST_MAX_ABS_VALUE = env_float("INGEST_MAX_ABS_VALUE", 1e15, minimum=1)
if INGEST_MAX_ABS_VALUE > 1e300:
    raise ImproperlyConfigured("INGEST_MAX_ABS_VALUE must be at most 1e300, or sums of readings would overflow.")
INGEST_REJECT_SAMPLES = env_int("INGEST_REJECT_SAMPLES", 20, minimum=0)
INGEST_SENSOR_CACHE_S = env_int("INGEST_SENSOR_CACHE_S", 60, minimum=0)
# A repeated (device, seq) within this window is a duplicate datagram; after it, the seq may be reused.
INGEST_SEQ_DEDUP_WINDOW_S = env_int("INGEST_SEQ_DEDUP_WINDOW_S", 86_400, minimum=1)
# Largest request body of any other path (ingest has its own limits above); larger ones are refused with 413
# before they are read. Django also applies it to every body it reads into memory, ingest's included.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 32 * 1024 * 1024, minimum=1024)
# A batch claimed this many times without finishing (its runs keep being killed) fails with a dead letter instead
# of being tried again; keep it above TASK_MAX_RETRIES + 1, so retries of transient errors fit under it.
INGEST_MAX_ATTEMPTS = env_int("INGEST_MAX_ATTEMPTS", 10, minimum=1)
# The ingest task evaluates the batch it stored itself, in the same process, instead of queueing
# alerts.evaluate_batch (one task per batch instead of two). False: evaluation goes to the `alerts` queue, for
# workers of its own there.
INGEST_EVALUATE_INLINE = env_bool("INGEST_EVALUATE_INLINE", True)
if INGEST_MAX_BODY_BYTES > DATA_UPLOAD_MAX_MEMORY_SIZE:
    raise ImproperlyConfigured(
        f"INGEST_MAX_BODY_BYTES ({INGEST_MAX_BODY_BYTES}) must not exceed DATA_UPLOAD_MAX_MEMORY_SIZE "
        f"({DATA_UPLOAD_MAX_MEMORY_SIZE}): Django refuses larger bodies anyway. Raise the latter too."
    )
# Finished ingest batches (their counts and reject samples) are kept this many days, then purged daily.
INGEST_BATCH_RETENTION_DAYS = env_int("INGEST_BATCH_RETENTION_DAYS", 14, minimum=1)
REALTIME_STALE_AFTER_S = env_int("REALTIME_STALE_AFTER_S", 900, minimum=1)
DEVICE_OFFLINE_AFTER_S = env_int("DEVICE_OFFLINE_AFTER_S", 600, minimum=1)
# Field-name maps for the flat record format, by adapter name (see apps/ingest/adapters.py).
INGEST_FLAT_FIELD_MAPS = {
    "flat": {
        "temperature_c": "temperature",
        "temperature": "temperature",
        "humidity": "humidity",
        "humidity_pct": "humidity",
        "pcv_temperature": "pcv_temperature",
        "voltage_dc": "voltage_dc",
        "voltage_v": "voltage_dc",
        "current_dc": "current_dc",
        "current_a": "current_dc",
    },
}

# --- InfluxDB v2 write API (apps.influx, docs/protocols.md) ------------------------------------------------------
# The tag that names a point's device, and the largest body taken (after gzip decompression), in bytes.
INFLUX_DEVICE_TAG = env_str("INFLUX_DEVICE_TAG", "device")
INFLUX_MAX_BODY_BYTES = env_int("INFLUX_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024)
if not INFLUX_DEVICE_TAG:
    raise ImproperlyConfigured("INFLUX_DEVICE_TAG must not be empty.")

# --- Alerting (apps.alerts, apps.notifications) -----------------------------------------------------------------
# Severity of a device-offline alert.
ALERT_DEVICE_OFFLINE_SEVERITY = env_choice("ALERT_DEVICE_OFFLINE_SEVERITY", "critical", {"warning", "critical"})
# How far before a batch's first reading evaluation looks for a sensor's readings not yet evaluated.
ALERT_EVALUATION_LOOKBACK_S = env_int("ALERT_EVALUATION_LOOKBACK_S", 3600, minimum=0)
# Stored batches still not evaluated after this many seconds are queued for evaluation again (beat).
ALERT_REQUEUE_AFTER_S = env_int("ALERT_REQUEUE_AFTER_S", 60, minimum=10)
# Email: Django's SMTP settings, plus the sender of notifications.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "media" / "outbox"))
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive; set one of them.")
NOTIFY_EMAIL_FROM = env_str("NOTIFY_EMAIL_FROM", "telemetry@localhost")
# Seconds one webhook delivery may take in all: name lookup, connect, TLS, sending, the answer's headers.
NOTIFY_WEBHOOK_TIMEOUT_S = env_float("NOTIFY_WEBHOOK_TIMEOUT_S", 5.0, minimum=0.1)
# Webhooks go to public addresses only (apps/core/egress.py); these networks (CIDRs) are allowed besides, e.g.
# a receiver on the plant network. Cloud metadata addresses stay refused.
WEBHOOK_ALLOWED_NETWORKS = env_networks("WEBHOOK_ALLOWED_NETWORKS", "")
# SMS and push: "console" (development: written to the worker's output) or "http" (a JSON gateway).
NOTIFY_SMS_BACKEND = env_choice("NOTIFY_SMS_BACKEND", "console", {"console", "http"})
NOTIFY_SMS_GATEWAY_URL = env_str("NOTIFY_SMS_GATEWAY_URL", "")
NOTIFY_SMS_GATEWAY_TOKEN = env_str("NOTIFY_SMS_GATEWAY_TOKEN", "")
NOTIFY_PUSH_BACKEND = env_choice("NOTIFY_PUSH_BACKEND", "console", {"console", "http"})
NOTIFY_PUSH_GATEWAY_URL = env_str("NOTIFY_PUSH_GATEWAY_URL", "")
NOTIFY_PUSH_GATEWAY_TOKEN = env_str("NOTIFY_PUSH_GATEWAY_TOKEN", "")
# Seconds one SMS or push delivery may take in all (as the webhook timeout).
NOTIFY_GATEWAY_TIMEOUT_S = env_float("NOTIFY_GATEWAY_TIMEOUT_S", 5.0, minimum=0.1)
for _channel in ("SMS", "PUSH"):
    if globals()[f"NOTIFY_{_channel}_BACKEND"] == "http" and not globals()[f"NOTIFY_{_channel}_GATEWAY_URL"]:
        raise ImproperlyConfigured(f"NOTIFY_{_channel}_BACKEND=http needs NOTIFY_{_channel}_GATEWAY_URL.")
# Delivery attempts per notification, and the backoff between them (exponential from the base, with jitter,
# capped below CELERY_VISIBILITY_TIMEOUT_S so a waiting retry is not redelivered early).
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 6, minimum=1)
NOTIFY_RETRY_BASE_S = env_float("NOTIFY_RETRY_BASE_S", 2.0, minimum=0.01)
NOTIFY_RETRY_MAX_S = env_float("NOTIFY_RETRY_MAX_S", 30.0, minimum=0.01)
# How long a worker holds a notification it is sending before another may take it over.
NOTIFY_LEASE_S = env_int("NOTIFY_LEASE_S", 60, minimum=1)
# Notifications overdue by this many seconds, and events left without notifications, are queued again (beat).
NOTIFY_REQUEUE_AFTER_S = env_int("NOTIFY_REQUEUE_AFTER_S", 30, minimum=5)
# Storm control defaults (per subscription): at most this many notifications per window, then one digest.
# 0 turns storm control off.
NOTIFY_STORM_LIMIT = env_int("NOTIFY_STORM_LIMIT", 10, minimum=0)
NOTIFY_STORM_WINDOW_S = env_int("NOTIFY_STORM_WINDOW_S", 300, minimum=1)
# Longest maintenance window, in days: a window silences every notification of its scope.
MAINTENANCE_WINDOW_MAX_DAYS = env_int("MAINTENANCE_WINDOW_MAX_DAYS", 14, minimum=1)
# Public address of this server, for links in notifications (empty: no links).
NOTIFY_BASE_URL = env_str("NOTIFY_BASE_URL", "").rstrip("/")
if NOTIFY_LEASE_S <= NOTIFY_WEBHOOK_TIMEOUT_S or NOTIFY_LEASE_S <= NOTIFY_GATEWAY_TIMEOUT_S:
    raise ImproperlyConfigured("NOTIFY_LEASE_S must be longer than the webhook and gateway timeouts.")
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "SeverityEnum": "apps.alerts.models.Severity",
        "AlertKindEnum": "apps.alerts.models.Alert.Kind",
        "AlertStateEnum": "apps.alerts.models.Alert.State",
        "AlertResolutionEnum": "apps.alerts.models.Alert.Resolution",
        "AlertEventKindEnum": "apps.alerts.models.AlertEvent.Kind",
        "ChannelEnum": "apps.notifications.models.Channel",
        "NotificationKindEnum": "apps.notifications.models.Notification.Kind",
        "NotificationStatusEnum": "apps.notifications.models.Notification.Status",
    }
)

# --- Aggregation, exports, retention (apps.aggregates, apps.stats) ---------------------------------------------

# The rollup refresh (docs/aggregation.md): how often it runs; how long a batch may take from its finished_at
# to its commit (the watermark stays this far behind); at most how many batches one run takes; how many seconds
# a run may spend backfilling rollups of older readings, and how many hours one backfill step covers.
AGGREGATES_REFRESH_INTERVAL_S = env_int("AGGREGATES_REFRESH_INTERVAL_S", 60, minimum=5)
AGGREGATES_REFRESH_SETTLE_S = env_int("AGGREGATES_REFRESH_SETTLE_S", 120, minimum=0)
AGGREGATES_REFRESH_MAX_BATCHES = env_int("AGGREGATES_REFRESH_MAX_BATCHES", 5000, minimum=1)
AGGREGATES_REFRESH_BUDGET_S = env_float("AGGREGATES_REFRESH_BUDGET_S", 20.0, minimum=0)
AGGREGATES_BACKFILL_CHUNK_HOURS = env_int("AGGREGATES_BACKFILL_CHUNK_HOURS", 24, minimum=1)
# Largest /api/v1/aggregates/ answer: buckets per series, and series times buckets.
AGGREGATES_MAX_BUCKETS = env_int("AGGREGATES_MAX_BUCKETS", 20_000, minimum=1)
AGGREGATES_MAX_POINTS = env_int("AGGREGATES_MAX_POINTS", 500_000, minimum=1)
# Retention: raw readings keep READINGS_RETENTION_DAYS (Storage above), rollups this many days, both in whole UTC
# days. The purge runs daily at 03:30 (TIME_ZONE): it drops whole readings partitions, deletes readings in
# windows of RETENTION_PURGE_CHUNK_MINUTES only inside a partition that straddles the cutoff, and runs for at
# most RETENTION_PURGE_BUDGET_S seconds (it queues itself again when there is more).
ROLLUPS_RETENTION_DAYS = env_int("ROLLUPS_RETENTION_DAYS", 730, minimum=1)
RETENTION_PURGE_CHUNK_MINUTES = env_int("RETENTION_PURGE_CHUNK_MINUTES", 60, minimum=1)
RETENTION_PURGE_BUDGET_S = env_float("RETENTION_PURGE_BUDGET_S", 90.0, minimum=1)
# Exports: more rows than this become a background job with a download link instead of a streamed answer;
# its file is kept this many hours; the job task may run this long. One export may hold at most
# EXPORTS_MAX_ROWS rows (readings, or buckets times series; more is a 400), and a user may have at most
# EXPORTS_MAX_ACTIVE_JOBS_PER_USER jobs queued or running at once (more is a 429).
EXPORTS_SYNC_MAX_ROWS = env_int("EXPORTS_SYNC_MAX_ROWS", 100_000, minimum=0)
EXPORTS_MAX_ROWS = env_int("EXPORTS_MAX_ROWS", 5_000_000, minimum=1)
EXPORTS_MAX_ACTIVE_JOBS_PER_USER = env_int("EXPORTS_MAX_ACTIVE_JOBS_PER_USER", 3, minimum=1)
EXPORTS_EXPIRE_HOURS = env_int("EXPORTS_EXPIRE_HOURS", 24, minimum=1)
EXPORTS_TASK_TIME_LIMIT_S = env_int("EXPORTS_TASK_TIME_LIMIT_S", 1800, minimum=60)
# A job started this many times without finishing (its runs were killed or timed out) fails.
EXPORTS_MAX_ATTEMPTS = env_int("EXPORTS_MAX_ATTEMPTS", 3, minimum=1)


# --- MQTT and device commands (apps.mqtt, apps.commands) -------------------------------------------------------
# The broker: mqtt://host:1883, or mqtts://host:8883 for TLS; credentials may be in the URL or set apart below.
MQTT_BROKER_URL = env_str("MQTT_BROKER_URL", "mqtt://localhost:1883")
# The backend's own account (the bridge, and web and workers publishing commands).
MQTT_USERNAME = env_str("MQTT_USERNAME", "")
MQTT_PASSWORD = env_str("MQTT_PASSWORD", "")
# The broker's dynamic-security admin: when set, the backend keeps the broker's accounts (its own and one per
# device) in step with the devices, at once on a change and every MQTT_ACCOUNTS_SYNC_INTERVAL_S. Empty: the
# broker authenticates devices some other way, or not at all.
MQTT_ADMIN_USERNAME = env_str("MQTT_ADMIN_USERNAME", "")
MQTT_ADMIN_PASSWORD = env_str("MQTT_ADMIN_PASSWORD", "")
MQTT_ACCOUNTS_SYNC_INTERVAL_S = env_int("MQTT_ACCOUNTS_SYNC_INTERVAL_S", 60, minimum=5)
# The dynamic-security plugin for the broker `make run` starts (empty: where the Mosquitto package put it).
MQTT_DYNSEC_PLUGIN = env_str("MQTT_DYNSEC_PLUGIN", "")
# TLS (mqtts://): a CA bundle (empty: the system's), and a client certificate and key if the broker wants one.
MQTT_TLS_CA_FILE = env_str("MQTT_TLS_CA_FILE", "")
MQTT_TLS_CERT_FILE = env_str("MQTT_TLS_CERT_FILE", "")
MQTT_TLS_KEY_FILE = env_str("MQTT_TLS_KEY_FILE", "")
MQTT_KEEPALIVE_S = env_int("MQTT_KEEPALIVE_S", 30, minimum=5)
# First topic level: devices publish to {root}/{device_id}/telemetry and so on.
MQTT_TOPIC_ROOT = env_str("MQTT_TOPIC_ROOT", "iot")
# The bridge's client id names its persistent session: messages that arrive while it is down wait in the
# broker for it, so two bridges must not share one (and a renamed bridge starts with an empty session).
MQTT_CLIENT_ID = env_str("MQTT_CLIENT_ID", "telemetry-bridge")
MQTT_SESSION_EXPIRY_S = env_int("MQTT_SESSION_EXPIRY_S", 7 * 86_400, minimum=0)
# How many unacknowledged messages the broker may have in flight to the bridge: above the micro-batch's
# message count, or batches are cut short by the broker rather than by the thresholds below.
MQTT_RECEIVE_MAXIMUM = env_int("MQTT_RECEIVE_MAXIMUM", 2000, minimum=1)
# Telemetry micro-batches: one ingest batch per this many readings or this many seconds, whichever is first.
MQTT_BATCH_MAX_READINGS = env_int("MQTT_BATCH_MAX_READINGS", 1000, minimum=1)
MQTT_BATCH_MAX_WAIT_S = env_float("MQTT_BATCH_MAX_WAIT_S", 1.0, minimum=0.01)
MQTT_RECONNECT_MIN_DELAY_S = env_int("MQTT_RECONNECT_MIN_DELAY_S", 1, minimum=1)
MQTT_RECONNECT_MAX_DELAY_S = env_int("MQTT_RECONNECT_MAX_DELAY_S", 60, minimum=1)
# How devices prove who they are (docs/devices.md): "signature" (an HMAC field checked by the bridge) or
# "broker" (the broker authenticates devices and restricts each to its own topics; the bridge trusts topics).
MQTT_DEVICE_AUTH = env_choice("MQTT_DEVICE_AUTH", "signature", {"signature", "broker"})
# With "broker", the bridge refuses to start against a broker that lets anonymous clients in, unless this says
# it is on purpose (a plain broker for an experiment); it then warns at start and in /health/ready.
MQTT_INSECURE_BROKER = env_bool("MQTT_INSECURE_BROKER", False)
# Signed messages (v3): accepted when their ts is within this many seconds of their arrival, and only once per
# nonce; telemetry older than that is stored as old news (it does not count as a sign of life).
MQTT_REPLAY_WINDOW_S = env_int("MQTT_REPLAY_WINDOW_S", 900, minimum=10)
# Accept v2 signatures (no ts, nonce or topic kind signed: replayable) while a fleet moves to v3.
MQTT_ACCEPT_V2_SIGNATURES = env_bool("MQTT_ACCEPT_V2_SIGNATURES", False)

# Sparkplug B host application in the MQTT bridge (docs/protocols.md#sparkplug-b): edge nodes under spBv1.0/.
SPARKPLUG_ENABLED = env_bool("SPARKPLUG_ENABLED", False)
SPARKPLUG_HOST_ID = env_str("SPARKPLUG_HOST_ID", "telemetry")
# Create the devices and sensors an unknown edge node announces in its births; otherwise they wait for an admin.
SPARKPLUG_AUTO_PROVISION = env_bool("SPARKPLUG_AUTO_PROVISION", False)
# Several bridges share the device topics through MQTT 5 shared subscriptions ($share/<group>/...) when this
# names the group; each bridge still needs its own MQTT_CLIENT_ID. Empty: one bridge takes everything.
MQTT_SHARED_GROUP = env_str("MQTT_SHARED_GROUP", "")
# Dead letters of messages the bridge cannot use: at most this many per device and reason, and this many in
# all, per minute (the rest are counted, not kept); a message is kept whole up to MQTT_DEAD_LETTER_MAX_BYTES
# (replayable), junk (invalid JSON or structure, bad signatures, replays) only its first KiB.
MQTT_DEAD_LETTERS_PER_DEVICE_PER_MINUTE = env_int("MQTT_DEAD_LETTERS_PER_DEVICE_PER_MINUTE", 10, minimum=1)
MQTT_DEAD_LETTERS_PER_MINUTE = env_int("MQTT_DEAD_LETTERS_PER_MINUTE", 300, minimum=1)
MQTT_DEAD_LETTER_MAX_BYTES = env_int("MQTT_DEAD_LETTER_MAX_BYTES", 65536, minimum=1024)
MQTT_PUBLISH_TIMEOUT_S = env_float("MQTT_PUBLISH_TIMEOUT_S", 5.0, minimum=0.1)
# Commands: how long one waits for its device when the request names no ttl_s, and the longest allowed.
COMMAND_DEFAULT_TTL_S = env_int("COMMAND_DEFAULT_TTL_S", 3600, minimum=1)
COMMAND_MAX_TTL_S = env_int("COMMAND_MAX_TTL_S", 7 * 86_400, minimum=1)

# --- Operations: metrics, logging, rate limits (apps.operations) -----------------------------------------------
# /metrics answers scrapers from these networks, or anyone sending "Authorization: Bearer <METRICS_TOKEN>".
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128")
# A worker or the MQTT bridge on a host of its own serves its metrics on this port (0: not served; web's
# /metrics covers every process that shares its PROMETHEUS_MULTIPROC_DIR).
METRICS_PORT = env_int("METRICS_PORT", 0, minimum=0)
# text (one line per event, for people; the default with DEBUG) or json (one object per line, for log shippers;
# the default otherwise). "plain" is the former name of text.
LOG_FORMAT = env_choice("LOG_FORMAT", "text" if DEBUG else "json", {"text", "json", "plain"})
if LOG_FORMAT == "plain":
    LOG_FORMAT = "text"
# Rate limits: "N/second|minute|hour|day", or "off". token and device count requests; ingest_readings counts
# readings per device key or token.
THROTTLE_RATES = {
    "token": env_rate("THROTTLE_TOKEN_RATE", "6000/minute"),
    "device": env_rate("THROTTLE_DEVICE_RATE", "1200/minute"),
    "ingest_readings": env_rate("THROTTLE_INGEST_READINGS_RATE", "1200000/minute"),
}

HEALTH_CHECK_TIMEOUT_S = env_float("HEALTH_CHECK_TIMEOUT_S", 2.0, minimum=0.1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "apps.operations.request_id.RequestIdFilter"},
        "routine_task_lines": {"()": "apps.operations.logs.RoutineTaskLinesAtDebug"},
    },
    "formatters": {
        # One JSON object per line on stdout, with the request id that started the work.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"()": "apps.operations.logs.TextFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # A line per task received, succeeded or sent by the beat: DEBUG (apps/operations/logs.py).
        **{
            name: {"filters": ["routine_task_lines"]}
            for name in ("celery.worker.strategy", "celery.app.trace", "celery.beat")
        },
    },
}

# --- The beat schedule (workers/schedule.py), whole, once the settings it reads are known -----------------------
CELERY_BEAT_SCHEDULE = beat_schedule(
    notify_requeue_after_s=NOTIFY_REQUEUE_AFTER_S,
    aggregates_refresh_interval_s=AGGREGATES_REFRESH_INTERVAL_S,
    mqtt_accounts_sync_interval_s=MQTT_ACCOUNTS_SYNC_INTERVAL_S if MQTT_ADMIN_USERNAME else None,
)
