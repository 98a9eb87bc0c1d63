"""Django settings for Obeya, driven by one table of ``OBEYA_*`` environment settings.

Every knob a user can turn is a row of ``OBEYA_SETTINGS`` below, with its default and help
text. ``docs/configuration.md`` lists each one (a test checks it) and ``obeya config``
prints the table with the values in force.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Setting:
    """One ``OBEYA_*`` environment setting: its name, default and what it is for."""

    name: str
    default: str
    help: str
    secret: bool = False

    def value(self) -> str:
        return os.environ.get(self.name, self.default)


OBEYA_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "OBEYA_DATA_DIR",
        "~/.local/share/obeya",
        "Directory for Obeya's own files: the embedded SQLite database, the generated "
        "secret key and the demo password. Created on first start.",
    ),
    Setting(
        "OBEYA_DATABASE_URL",
        "",
        "Empty for the embedded SQLite database in the data dir, or "
        "postgresql://user:password@host:5432/name to scale out on PostgreSQL.",
        secret=True,
    ),
    Setting(
        "OBEYA_SECRET_KEY",
        "",
        "Key that signs sessions and CSRF tokens. Empty: a random key is generated on first "
        "start and kept in DATA_DIR/secret_key.",
        secret=True,
    ),
    Setting(
        "OBEYA_SECRETS_KEY_FILE",
        "",
        "File of the keys that encrypt stored secrets (job secrets, webhook and channel "
        "secrets). Empty: DATA_DIR/keys/secrets.key, created (mode 0600) when the first "
        "secret is stored. Kept apart from the database: back it up separately.",
    ),
    Setting(
        "OBEYA_BACKUP_PASSPHRASE",
        "",
        "Passphrase that `obeya backup --encrypt` encrypts with and `obeya restore` "
        "decrypts with, when no --passphrase-file is given.",
        secret=True,
    ),
    Setting(
        "OBEYA_ALLOWED_HOSTS",
        "127.0.0.1,localhost",
        "Comma-separated host names this server answers to (Django ALLOWED_HOSTS).",
    ),
    Setting(
        "OBEYA_CSRF_TRUSTED_ORIGINS",
        "",
        "Comma-separated origins (https://obeya.example.com) allowed to POST forms when "
        "Obeya runs behind a TLS-terminating proxy.",
    ),
    Setting(
        "OBEYA_TRUST_PROXY",
        "0",
        "How many reverse proxies stand in front of Obeya (0: none, clients connect "
        "directly). With 1 or more, X-Forwarded-Proto: https marks a request as HTTPS, and "
        "the client's address (for sign-in throttling and the audit trail) is taken from "
        "X-Forwarded-For as the nearest proxy saw it. Set it only when those proxies set "
        "both headers: otherwise a client could name any address.",
    ),
    Setting(
        "OBEYA_SECURE_COOKIES",
        "auto",
        "Whether the session and CSRF cookies carry the Secure flag (sent over HTTPS only). "
        "auto: on requests that came over HTTPS (directly, or through OBEYA_TRUST_PROXY "
        "proxies), so plain http://127.0.0.1 still works; true: always; false: never.",
    ),
    Setting(
        "OBEYA_DEBUG",
        "false",
        "true shows Django's debug pages. Never in production.",
    ),
    Setting(
        "OBEYA_TIME_ZONE",
        "UTC",
        "Time zone used to show times in the web UI. Times are stored in UTC.",
    ),
    Setting(
        "OBEYA_RUNNERS",
        "2",
        "Number of embedded job runners `obeya serve` starts (0 for none). They run jobs "
        "exactly like a remote `obeya runner`: the same HTTP requests, handed straight to the "
        "server in the same process.",
    ),
    Setting(
        "OBEYA_SANDBOX",
        "on",
        "on runs every command a user wrote (job scripts, monitor, backup and restore "
        "commands) in a bubblewrap sandbox; without `bwrap` installed they are refused. off "
        "runs them unconfined, as this host's user: only for a runner host that trusts "
        "every pipeline it runs. See docs/security.md.",
    ),
    Setting(
        "OBEYA_SANDBOX_NETWORK",
        "shared",
        "shared gives sandboxed commands this host's network; none cuts them off from it.",
    ),
    Setting(
        "OBEYA_SANDBOX_READONLY",
        "",
        "Comma-separated absolute folders sandboxed commands may read, besides the system "
        "(/usr, /etc): for example a toolchain in /opt.",
    ),
    Setting(
        "OBEYA_SANDBOX_WRITABLE",
        "",
        "Comma-separated absolute folders backup and restore commands may write, besides "
        "their service's own <data dir>/backups/<service>: for example a mounted backup volume.",
    ),
    Setting(
        "OBEYA_SERVER_COMMANDS",
        "on",
        "off refuses every command that would run outside a pipeline (command monitors, "
        "backup and restore commands), whoever defines it; only pipelines' jobs run.",
    ),
    Setting(
        "OBEYA_WEB_WORKERS",
        "auto",
        "Number of processes `obeya serve` answers HTTP with (`--workers` overrides it). "
        "auto: 2, or 1 on a machine with one CPU. The first process also runs the runners, "
        "deployers and schedulers; the others only answer HTTP, on the same port.",
    ),
    Setting(
        "OBEYA_LEASE_SECONDS",
        "30",
        "How long a runner holds a job without a heartbeat before the job counts as lost "
        "and is retried. Runners heartbeat every third of it.",
    ),
    Setting(
        "OBEYA_DEPLOYERS",
        "1",
        "Number of deployer threads `obeya serve` starts (0 for none). Each carries out one "
        "deployment at a time; an environment takes one deployment at a time whatever the "
        "count, through a database lease, also across several servers.",
    ),
    Setting(
        "OBEYA_OUTBOUND_ALLOW",
        "environments",
        "Where monitors, health checks and notification webhooks may connect: comma-separated "
        "`environments` (the exact scheme://host:port of URLs a service's environments name: "
        "public ones, and loopback ones of local environments an administrator approved), "
        "`loopback` (every port on this machine), host names and CIDR networks (10.0.0.0/8). "
        "Link-local addresses (169.254.169.254) are never allowed.",
    ),
    Setting(
        "OBEYA_SMTP_URL",
        "",
        "The mail server for e-mail notifications: smtp://host:25 (plain, for a local "
        "relay), smtp+starttls://user:password@host:587 or smtps://user:password@host:465. "
        "Empty: e-mail channels fail their deliveries saying no mail server is set.",
        secret=True,
    ),
    Setting(
        "OBEYA_EMAIL_FROM",
        "obeya@localhost",
        "The sender address of e-mail notifications.",
    ),
    Setting(
        "OBEYA_URL",
        "",
        "CLI only: the server the API-client commands talk to; overrides the saved login.",
    ),
    Setting(
        "OBEYA_TOKEN",
        "",
        "CLI only: the API token the client commands send; overrides the saved login.",
        secret=True,
    ),
)

_TRUE = {"1", "true", "yes", "on"}


def setting(name: str) -> str:
    """Value of one ``OBEYA_*`` setting, from the environment or its default."""
    for row in OBEYA_SETTINGS:
        if row.name == name:
            return row.value()
    raise KeyError(f"{name} is not an Obeya setting")


def database_from_url(url: str, data_dir: Path) -> dict[str, object]:
    """Django DATABASES['default'] for an ``OBEYA_DATABASE_URL`` (empty = embedded SQLite)."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(data_dir / "obeya.sqlite3"),
            # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of one
            # failing on a lock upgrade; FULL makes a commit survive power loss (A1).
            # Tests use a file too (not :memory:), so concurrency tests see real locking;
            # one per test process, so two test runs on one checkout never share it.
            "TEST": {"NAME": str(data_dir / f"test-{os.getpid()}.sqlite3")},
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                "PRAGMA foreign_keys=ON;",
            },
            # Reuse a thread's connection across requests: opening one and running its
            # pragmas costs more than many of the requests themselves.
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(
            f"OBEYA_DATABASE_URL: unsupported scheme {parts.scheme!r}; "
            "use postgresql://user:password@host:5432/name or leave it empty for SQLite"
        )
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "obeya",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


def _secret_key(data_dir: Path) -> str:
    configured = setting("OBEYA_SECRET_KEY")
    if configured:
        return configured
    key_file = data_dir / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(50)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: when two processes start together, one key wins and both read it back.
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _whole_number(name: str) -> int:
    raw = setting(name).strip() or "0"
    if not raw.isdigit():
        raise ImproperlyConfigured(f"{name} must be a whole number of 0 or more, not {raw!r}")
    return int(raw)


def _web_workers() -> int:
    """OBEYA_WEB_WORKERS as a count: ``auto`` is two processes, or one on a single CPU.

    Two, not one per CPU: each process is a whole Django (tens of MB), SQLite takes one
    writer at a time whatever the count, and the first process shares its CPU with the
    runners and deployers. Past two CPUs, raise it when requests wait for a process.
    """
    raw = setting("OBEYA_WEB_WORKERS").strip()
    if raw.lower() in {"", "auto"}:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        return min(2, cpus or os.cpu_count() or 1)
    if not raw.isdigit() or int(raw) < 1:
        raise ImproperlyConfigured(
            f"OBEYA_WEB_WORKERS must be auto or a whole number of 1 or more, not {raw!r}"
        )
    return int(raw)


def _choice(name: str, choices: tuple[str, ...]) -> str:
    raw = setting(name).strip().lower()
    if raw not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


DATA_DIR = Path(setting("OBEYA_DATA_DIR")).expanduser().resolve()
DEBUG = setting("OBEYA_DEBUG").lower() in _TRUE
SECRET_KEY = _secret_key(DATA_DIR)
ALLOWED_HOSTS = _split(setting("OBEYA_ALLOWED_HOSTS"))
CSRF_TRUSTED_ORIGINS = _split(setting("OBEYA_CSRF_TRUSTED_ORIGINS"))
DATABASES = {"default": database_from_url(setting("OBEYA_DATABASE_URL"), DATA_DIR)}
OBEYA_RUNNERS = _whole_number("OBEYA_RUNNERS")
OBEYA_LEASE_SECONDS = max(2, _whole_number("OBEYA_LEASE_SECONDS"))
OBEYA_DEPLOYERS = _whole_number("OBEYA_DEPLOYERS")
OBEYA_WEB_WORKERS = _web_workers()
OBEYA_OUTBOUND_ALLOW = _split(setting("OBEYA_OUTBOUND_ALLOW"))
OBEYA_SANDBOX_WRITABLE = _split(setting("OBEYA_SANDBOX_WRITABLE"))
OBEYA_SERVER_COMMANDS = setting("OBEYA_SERVER_COMMANDS").strip().lower() not in {"off", "false"}
OBEYA_SMTP_URL = setting("OBEYA_SMTP_URL")
OBEYA_TRUST_PROXY = _whole_number("OBEYA_TRUST_PROXY")
OBEYA_SECURE_COOKIES = _choice("OBEYA_SECURE_COOKIES", ("auto", "true", "false"))
OBEYA_SECRETS_KEY_FILE = setting("OBEYA_SECRETS_KEY_FILE")
DEFAULT_FROM_EMAIL = setting("OBEYA_EMAIL_FROM")


def _mail_url(url: str) -> tuple[str, int, str, str, bool, bool]:
    """(host, port, user, password, STARTTLS, TLS) from OBEYA_SMTP_URL."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url or "smtp://localhost")
    tls = parts.scheme == "smtps"
    starttls = parts.scheme == "smtp+starttls"
    port = parts.port or (465 if tls else 587 if starttls else 25)
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    return parts.hostname or "localhost", port, user, password, starttls, tls


(EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS, EMAIL_USE_SSL) = (
    _mail_url(OBEYA_SMTP_URL)
)
EMAIL_TIMEOUT = 10

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "obeya.core",
    "obeya.catalog",
    "obeya.pipelines",
    "obeya.backlog",
    "obeya.board",
    "obeya.deploy",
    "obeya.ops",
    "obeya.metrics",
    "obeya.web",
]

MIDDLEWARE = [
    "obeya.web.headers.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "obeya.web.headers.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "obeya.web.input_guard.InputGuardMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "obeya.urls"
ASGI_APPLICATION = "obeya.asgi.application"
AUTH_USER_MODEL = "core.User"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

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
                "obeya.web.context.navigation",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = setting("OBEYA_TIME_ZONE")
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's database sessions and model backend, each reading its row in one plain statement.
SESSION_ENGINE = "obeya.web.sessions"
AUTHENTICATION_BACKENDS = ["obeya.core.backends.UserBackend"]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if OBEYA_TRUST_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = OBEYA_SECURE_COOKIES == "true"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"obeya": {"level": "INFO"}},
}
