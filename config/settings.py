"""Kubeboard settings.

Everything comes from the environment, with embedded defaults that need no other server:
SQLite in ``KUBEBOARD_DATA_DIR`` (default ``./var``), the django-q2 ORM broker, and a live
feed read from the database. Set ``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` for the
distributed setup; the code is the same.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from config.datadir import data_dir, sqlite_path
from core.keyfiles import load_or_create_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = data_dir()
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("KUBEBOARD_DEBUG", False)
SECRET_KEY = os.environ.get("KUBEBOARD_SECRET_KEY") or load_or_create_secret_key(DATA_DIR / "secret_key")
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("KUBEBOARD_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("KUBEBOARD_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_q",
    "django_htmx",
    "axes",
    "core",
    "audit",
    "clusters",
    "nodes",
    "tokens",
    "operations",
    "teams",
    "artifacts",
    "workflows",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from a maintained server (no development handler); see STATIC_* below.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A NUL character in the address, query or a form field: a 400 before any lookup (PostgreSQL refuses it).
    "core.middleware.RefuseNulCharactersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Correlation id, actor, address and user agent for every audit record of the request.
    "audit.middleware.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After a one-time password, every page leads to the password change form until it is changed.
    "teams.middleware.PasswordChangeRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.SecurityHeadersMiddleware",
    # Cache-Control: no-store on the responses that carry a secret or a backup (the list is there).
    "core.no_store.NoStoreMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Login rate limiting (django-axes); last, as its documentation asks.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

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
                "audit.context_processors.audit_alarm",
            ],
        },
    },
]


def database_from_url(url: str) -> dict:
    """Only PostgreSQL URLs are accepted: SQLite is configured by KUBEBOARD_DATA_DIR."""
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql"}:
        raise ValueError(f"DATABASE_URL must start with postgres:// or postgresql://, got {parsed.scheme!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")),
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": unquote(parsed.hostname or ""),
        "PORT": str(parsed.port or ""),
        "CONN_MAX_AGE": 0,
    }


DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    SQLITE_PATH = sqlite_path()
    if not SQLITE_PATH.exists():
        # Created owner-only before SQLite opens it (its -wal/-shm files inherit the mode).
        SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(SQLITE_PATH, os.O_WRONLY | os.O_CREAT, 0o600))
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            # WAL lets the web process read while a worker writes; IMMEDIATE takes the write
            # lock at BEGIN so two writers queue instead of failing with "database is locked".
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # Tests that start real worker and server processes need a file both can open.
            "TEST": {"NAME": os.environ.get("KUBEBOARD_TEST_SQLITE_PATH", str(DATA_DIR / "test.sqlite3"))},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # Refuses any login attempt for a locked-out username and address before checking the password.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Django permissions (user.has_perm, the admin) answered from team roles (core.permissions).
    "core.permissions.TeamRoleBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # collectstatic's target; WhiteNoise also serves it
SERVE_STATIC = env_bool("KUBEBOARD_SERVE_STATIC", True)
if not SERVE_STATIC:  # a web server in front serves STATIC_ROOT (after collectstatic)
    MIDDLEWARE.remove("whitenoise.middleware.WhiteNoiseMiddleware")
# WhiteNoise serves the static directories directly (no collectstatic step needed); a path it
# does not know, such as /static/%2e%2e/..., falls through to an ordinary 404.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- request size ----------------------------------------------------------------------------
# The largest request body the web server takes (core/webserver.py); a larger one gets a 413
# before any of it is held in memory. The largest file a page takes is 256 KiB.
MAX_REQUEST_BYTES = int(os.environ.get("KUBEBOARD_MAX_REQUEST_BYTES", str(5 * 1024 * 1024)))

# --- login rate limiting (django-axes) -----------------------------------------------------
# After AXES_FAILURE_LIMIT wrong passwords for one username from one address, that pair is
# refused (even with the right password) for the cool-off time; the admin login included.
AXES_FAILURE_LIMIT = int(os.environ.get("KUBEBOARD_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("KUBEBOARD_LOGIN_COOLOFF_MINUTES", "15")) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "core.middleware.client_address"
AXES_VERBOSE = False

# --- security headers, cookies and TLS -----------------------------------------------------
# Production: KUBEBOARD_DEBUG off (the default) and KUBEBOARD_TLS=1 behind HTTPS; then
# `manage.py check --deploy` has no warnings (README, "Audit and teams").
TLS = env_bool("KUBEBOARD_TLS", False)
SECURE_SSL_REDIRECT = TLS and env_bool("KUBEBOARD_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = TLS
CSRF_COOKIE_SECURE = TLS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = int(os.environ.get("KUBEBOARD_HSTS_SECONDS", "31536000")) if TLS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = TLS and env_bool("KUBEBOARD_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = TLS and env_bool("KUBEBOARD_HSTS_PRELOAD", True)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (only then).
if env_bool("KUBEBOARD_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Our pages load scripts and styles from /static/ only; nothing inline, nothing foreign.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "clusters:list"
LOGOUT_REDIRECT_URL = "login"

# --- secrets at rest -----------------------------------------------------------------------
# A comma-separated list of Fernet keys; the first encrypts, all decrypt (rotation).
# Without it the embedded default keeps a generated key file beside the database.
ENCRYPTION_KEYS = os.environ.get("KUBEBOARD_ENCRYPTION_KEYS", "")
ENCRYPTION_KEY_FILE = Path(os.environ.get("KUBEBOARD_ENCRYPTION_KEY_FILE", DATA_DIR / "encryption.key"))

# --- audit trail (audit.keys) --------------------------------------------------------------
# HMAC keys as comma-separated id:secret pairs; the first signs new records, all verify.
# Without it the embedded default keeps a generated key file beside the database.
AUDIT_KEYS = os.environ.get("KUBEBOARD_AUDIT_KEYS", "")
AUDIT_KEY_FILE = Path(os.environ.get("KUBEBOARD_AUDIT_KEY_FILE", DATA_DIR / "audit-hmac.key"))
# Ed25519 private key (PEM) that signs checkpoints of the chain head; generated if missing.
AUDIT_SIGNING_KEY_FILE = Path(os.environ.get("KUBEBOARD_AUDIT_SIGNING_KEY_FILE", DATA_DIR / "audit-checkpoint.key"))
# How often the worker signs a checkpoint when records were added (0 = only on demand).
AUDIT_CHECKPOINT_MINUTES = int(os.environ.get("KUBEBOARD_AUDIT_CHECKPOINT_MINUTES", "60"))
# Append-only directory outside the database that receives every checkpoint (and a small signed
# checkpoint after each committed append). In production: another volume or host.
AUDIT_CHECKPOINT_DIR = Path(os.environ.get("KUBEBOARD_AUDIT_CHECKPOINT_DIR", DATA_DIR / "audit-checkpoints"))
# Earlier checkpoint public keys (base64, comma-separated) still trusted after a key rotation.
AUDIT_CHECKPOINT_PUBLIC_KEYS = [
    k.strip() for k in os.environ.get("KUBEBOARD_AUDIT_CHECKPOINT_PUBLIC_KEYS", "").split(",") if k.strip()
]
# How often the worker verifies the whole trail against the newest external checkpoint (0: never).
AUDIT_VERIFY_MINUTES = int(os.environ.get("KUBEBOARD_AUDIT_VERIFY_MINUTES", "60"))
# Stream every record to a SIEM (audit.siem): syslog+tcp://host:port, syslog+tls://host:port or
# an http(s):// URL; empty = off. The worker ships; so does manage.py audit_ship.
AUDIT_SINK = os.environ.get("KUBEBOARD_AUDIT_SINK", "").strip()
AUDIT_SINK_CA_FILE = os.environ.get("KUBEBOARD_AUDIT_SINK_CA_FILE", "")  # TLS: trust this CA (else the system's)
AUDIT_SINK_TOKEN = os.environ.get("KUBEBOARD_AUDIT_SINK_TOKEN", "")  # HTTP: sent as "Authorization: Bearer"
AUDIT_SINK_BATCH = int(os.environ.get("KUBEBOARD_AUDIT_SINK_BATCH", "500"))
AUDIT_SINK_INTERVAL = float(os.environ.get("KUBEBOARD_AUDIT_SINK_INTERVAL", "2"))
AUDIT_SINK_TIMEOUT = float(os.environ.get("KUBEBOARD_AUDIT_SINK_TIMEOUT", "10"))
# Addresses of reverse proxies whose X-Forwarded-For names the client (else REMOTE_ADDR is the client).
TRUSTED_PROXIES = [p.strip() for p in os.environ.get("KUBEBOARD_TRUSTED_PROXIES", "").split(",") if p.strip()]

# --- outgoing connections ------------------------------------------------------------------
# Dotted path of a callable(address) that raises to refuse a destination before any SSH or
# Kubernetes API connection (core.network). Empty in production; the test environment sets
# the test bed's route guard so nothing sent to a sandbox address can leave the machine.
CONNECTION_GUARD = os.environ.get("KUBEBOARD_CONNECTION_GUARD", "")
# How long an SSH connection to a machine may take to answer (TCP connect and SSH handshake).
SSH_CONNECT_TIMEOUT = float(os.environ.get("KUBEBOARD_SSH_CONNECT_TIMEOUT", "10"))

# --- background work and live events -------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")

Q_CLUSTER = {
    "name": "kubeboard",
    "workers": int(os.environ.get("KUBEBOARD_WORKERS", "2")),
    "timeout": int(os.environ.get("KUBEBOARD_TASK_TIMEOUT", "7200")),
    "retry": int(os.environ.get("KUBEBOARD_TASK_TIMEOUT", "7200")) + 60,
    # An operation is never re-run by the queue behind the user's back: resuming is explicit.
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "poll": float(os.environ.get("KUBEBOARD_QUEUE_POLL", "0.1")),
    "label": "Background tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

if REDIS_URL:
    # Redis pub/sub: a published batch is pushed to every web process subscribed to the
    # operation's group in one step (the list-based layer costs four round trips per message
    # received). A message missed while a connection is down is read from the database by the
    # follower (operations.fanout), so pub/sub's fire-and-forget loses nothing.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # redis-py 8 defaults to a 5 s socket timeout that kills idle connections.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            },
        }
    }
else:
    # No cross-process layer in the embedded default: the live feed reads the database.
    CHANNEL_LAYERS = {}

# How long a worker may go silent before its running operation counts as interrupted.
OPERATION_LEASE_SECONDS = int(os.environ.get("KUBEBOARD_OPERATION_LEASE_SECONDS", "30"))
OPERATION_HEARTBEAT_SECONDS = max(1, OPERATION_LEASE_SECONDS // 6)
# Event batching in the runner: flush at this many events or after this many seconds.
EVENT_FLUSH_COUNT = int(os.environ.get("KUBEBOARD_EVENT_FLUSH_COUNT", "200"))
EVENT_FLUSH_SECONDS = float(os.environ.get("KUBEBOARD_EVENT_FLUSH_SECONDS", "0.05"))
# Embedded live feed: how often a websocket consumer looks for new events in the database.
EVENT_POLL_SECONDS = float(os.environ.get("KUBEBOARD_EVENT_POLL_SECONDS", "0.1"))
# With Redis the database is still read now and then, so a dropped message is noticed.
EVENT_SAFETY_POLL_SECONDS = float(os.environ.get("KUBEBOARD_EVENT_SAFETY_POLL_SECONDS", "1.0"))
# Open streams re-check their watchers' access this often (changes made through Django close
# them at once; this catches the rest), in one batch of queries per web process.
STREAM_ACCESS_CHECK_SECONDS = float(os.environ.get("KUBEBOARD_STREAM_ACCESS_CHECK_SECONDS", "1.0"))
# Worker heartbeats (core.heartbeat) and how old the newest may be for /readyz to say ready.
WORKER_HEARTBEAT_SECONDS = float(os.environ.get("KUBEBOARD_WORKER_HEARTBEAT_SECONDS", "5"))
WORKER_HEARTBEAT_STALE_SECONDS = float(os.environ.get("KUBEBOARD_WORKER_HEARTBEAT_STALE_SECONDS", "20"))
# A load balancer probes /healthz and /readyz over plain HTTP on the backend port.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# A web process waits this long for Redis at start-up, then refuses to start (config/asgi.py).
REDIS_STARTUP_WAIT_SECONDS = float(os.environ.get("KUBEBOARD_REDIS_STARTUP_WAIT_SECONDS", "10"))
# One event message (a line of remote output) is capped at this many characters, with a marker.
EVENT_MESSAGE_MAX_CHARS = int(os.environ.get("KUBEBOARD_EVENT_MESSAGE_MAX_CHARS", "8192"))
# A queued operation whose task no worker picked up (broker flushed, worker crashed before
# claiming) is queued again after this long; a task waiting for the cluster lock keeps it fresh.
OPERATION_QUEUE_TIMEOUT_SECONDS = int(os.environ.get("KUBEBOARD_OPERATION_QUEUE_TIMEOUT_SECONDS", "60"))
# How often a running operation looks for a cancel request (the phase sees cancel_event then).
OPERATION_CANCEL_POLL_SECONDS = float(os.environ.get("KUBEBOARD_OPERATION_CANCEL_POLL_SECONDS", "0.5"))
# While a cluster page is open, its Nodes are read again from the API server at most this often
# (one worker task per cluster, whatever the number of viewers and processes: clusters.nodestatus);
# 0 turns the live Node status off (the summary then shows the last read-back).
NODE_STATUS_REFRESH_SECONDS = float(os.environ.get("KUBEBOARD_NODE_STATUS_REFRESH_SECONDS", "15"))
# Machine preparation (issue 19). Air-gapped artifact sets are kept here, one directory per set.
ARTIFACTS_DIR = Path(os.environ.get("KUBEBOARD_ARTIFACTS_DIR", DATA_DIR / "artifacts"))
# The largest set an import or upload accepts (an upload is streamed to disk, never held in memory).
ARTIFACT_MAX_BYTES = int(os.environ.get("KUBEBOARD_ARTIFACT_MAX_BYTES", str(4 * 1024**3)))
# Machines a Prepare operation works on at once (each its own SSH connection and thread).
PREPARE_MAX_PARALLEL = int(os.environ.get("KUBEBOARD_PREPARE_MAX_PARALLEL", "6"))
# How long apt-get waits for a package-manager lock another process holds before it fails.
PREPARE_LOCK_WAIT_SECONDS = int(os.environ.get("KUBEBOARD_PREPARE_LOCK_WAIT_SECONDS", "120"))
# How long a started containerd has to answer on its socket.
PREPARE_RUNTIME_START_SECONDS = float(os.environ.get("KUBEBOARD_PREPARE_RUNTIME_START_SECONDS", "30"))
# Every upload passes this bound first (the largest upload is an artifact set), then Django's
# handlers: small files in memory, the rest in a temporary file in pieces.
FILE_UPLOAD_HANDLERS = [
    "artifacts.uploads.BoundedUpload",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# The directory that stands for / on every machine Prepare touches: "/" on real machines. A test
# bed whose machines share this host's root sets it to each machine's own directory tree ("{node}"
# stands for the machine's name, e.g. /srv/bed/{node}).
PREPARE_ROOT = os.environ.get("KUBEBOARD_PREPARE_ROOT", "/")
# How many times an operation interrupted inside idempotent phases is resumed automatically.
OPERATION_AUTO_RESUME_LIMIT = int(os.environ.get("KUBEBOARD_OPERATION_AUTO_RESUME_LIMIT", "2"))
# Extra modules that register operation kinds when the operations app starts (comma-separated).
OPERATION_KIND_MODULES = [
    m.strip() for m in os.environ.get("KUBEBOARD_OPERATION_KIND_MODULES", "").split(",") if m.strip()
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # A refused request (403) is one line with user, path and reason, never a traceback.
    "filters": {"forbidden_one_line": {"()": "core.logging_filters.ForbiddenOneLine"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["forbidden_one_line"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("KUBEBOARD_LOG_LEVEL", "INFO")},
    "loggers": {
        "django_q": {"level": "WARNING"},
        "asyncssh": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "django.request": {"filters": ["forbidden_one_line"]},
        "django.security.csrf": {"filters": ["forbidden_one_line"]},
    },
}
