"""SpeakerAuth settings: one module, every knob an environment variable.

Local work needs no configuration (debug on, SQLite, a throwaway secret key). With
DJANGO_DEBUG=false the settings fail closed: a missing secret key or host list raises
ImproperlyConfigured instead of starting an insecure server.
"""

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    """Accept only true/false (and 1/0, yes/no); anything else is a configuration error."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    return value


_RATE = re.compile(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)")


def env_rate(name: str, default: str) -> str | None:
    """A DRF throttle rate, checked here: DRF parses it per request, so a typo was a 500 on
    every throttled request. "off" (or 0) turns the throttle off."""
    raw = os.environ.get(name, "").strip().lower() or default
    if raw in ("off", "0"):
        return None
    if not _RATE.fullmatch(raw):
        raise ImproperlyConfigured(
            f"{name} must be requests/period (e.g. 120/min; period s, min, hour or day) or off, "
            f"got {raw!r}"
        )
    return raw


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false")
    SECRET_KEY = "django-insecure-local-development-only-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when DJANGO_DEBUG is false")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "axes",
    "accounts",
    "verification",
]

MIDDLEWARE = [
    # /healthz and /readyz for probes: before the host check and the HTTPS redirect.
    "speakerauth.health.HealthCheckMiddleware",
    # X-Request-ID on every response and in every log line of the request.
    "speakerauth.request_id.RequestIDMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Database down (restart, failover) -> 503 with Retry-After, not a 500 with a traceback.
    "speakerauth.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Last: turns a sign-in refused by the password lockout into accounts.lockout's 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "speakerauth.urls"
WSGI_APPLICATION = "speakerauth.wsgi.application"

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
                "django.template.context_processors.csp",
                "accounts.context_processors.signup_open",
            ],
        },
    },
]

# SQLite for local work with no server; Postgres (or anything dj-database-url parses) when set.
# An empty DATABASE_URL (common in .env files) means unset, not "no database".
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Public sign-up: off for a deployment whose accounts an administrator creates (staff, an
# organisation's members); the pages then link to none and /accounts/signup/ answers 403.
ACCOUNTS_SIGNUP_OPEN = env_bool("ACCOUNTS_SIGNUP_OPEN", True)
# Password guessing (django-axes, accounts/lockout.py): after ACCOUNTS_LOGIN_FAILURES failed
# sign-ins (forms, token endpoint, HTTP Basic) by the same ACCOUNTS_LOGIN_LOCKOUT_BY key, that
# key is refused with 429 for ACCOUNTS_LOGIN_COOLOFF_MINUTES, restarted by every try meanwhile; a
# success clears the count. The default key, username and client address together, stops one
# client guessing an account without letting anyone lock its owner out; "username" also stops
# guessing spread over many addresses, at that price. ACCOUNTS_LOGIN_FAILURES=0: off.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out key unchecked
    "django.contrib.auth.backends.ModelBackend",
]
_LOGIN_LOCKOUT_KEYS = {
    "username_and_ip": [["username", "ip_address"]],
    "username": ["username"],
    "ip": ["ip_address"],
    "username_or_ip": ["username", "ip_address"],
}
_login_lockout_by = env_str("ACCOUNTS_LOGIN_LOCKOUT_BY", "username_and_ip")
if _login_lockout_by not in _LOGIN_LOCKOUT_KEYS:
    raise ImproperlyConfigured(
        f"ACCOUNTS_LOGIN_LOCKOUT_BY must be one of {sorted(_LOGIN_LOCKOUT_KEYS)}, "
        f"got {_login_lockout_by!r}"
    )
AXES_LOCKOUT_PARAMETERS = _LOGIN_LOCKOUT_KEYS[_login_lockout_by]
AXES_FAILURE_LIMIT = env_int("ACCOUNTS_LOGIN_FAILURES", 10)
AXES_ENABLED = AXES_FAILURE_LIMIT > 0
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ACCOUNTS_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "speakerauth.client_ip.client_ip"  # as the audit log sees it
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_HANDLER = "accounts.lockout.LockoutHandler"  # keeps no request parameters
# Failed sign-ins are kept only while they count; no log of successful ones (not in the export).
AXES_DISABLE_ACCESS_LOG = True
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Third-party JS (Meyda, Chart.js) is served straight from the npm install, never copied in.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/meyda", BASE_DIR / "node_modules" / "meyda" / "dist" / "web"),
    ("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist"),
    # Swagger UI for /api/docs/ from npm too: a CDN script would break the CSP (script-src self).
    ("vendor/swagger-ui", BASE_DIR / "node_modules" / "swagger-ui-dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            # Hashed, compressed files with far-future immutable cache headers (WhiteNoise);
            # ES-module imports rewritten to the hashed names too.
            else "speakerauth.storage.ModuleManifestStaticFilesStorage"
        )
    },
}

# Console e-mail locally; SMTP (configured from the environment) in production.
_EMAIL_BACKEND = env_str(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
MAILERS = {
    "default": {
        "BACKEND": _EMAIL_BACKEND,
        "OPTIONS": (
            {
                "host": env_str("DJANGO_EMAIL_HOST", "localhost"),
                "port": env_int("DJANGO_EMAIL_PORT", 587),
                "username": env_str("DJANGO_EMAIL_USER"),
                "password": env_str("DJANGO_EMAIL_PASSWORD"),
                "use_tls": env_bool("DJANGO_EMAIL_USE_TLS", True),
                # A mail server that does not answer must not hold a request for long.
                "timeout": env_int("DJANGO_EMAIL_TIMEOUT", 10, minimum=1),
            }
            if _EMAIL_BACKEND.endswith("smtp.EmailBackend")
            else {}
        ),
    }
}
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "speakerauth@localhost")

# Security posture: secure by default whenever debug is off.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# The microphone pages load only our own scripts; no inline script anywhere.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "media-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# Uploaded feature arrays are big JSON; bound them so a hostile body is refused, not parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first so anonymous API calls get 401 with a WWW-Authenticate challenge.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    # Feature-contract, domain and size errors -> 4xx with {"detail", "code", "field"}, one place.
    "EXCEPTION_HANDLER": "verification.exceptions.api_exception_handler",
    # Throttles only smooth load; the lockout (VERIFICATION_LOCKOUT_*) is what stops guessing.
    "DEFAULT_THROTTLE_RATES": {
        "verification": env_rate("VERIFICATION_THROTTLE_RATE", "120/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "SpeakerAuth API",
    "DESCRIPTION": (
        "Voice verification as a second factor. Browsers and scripts send per-frame "
        "features (never audio); the service answers accept or reject."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served by us (see STATICFILES_DIRS) and initialised by a separate script request
    # (SpectacularSwaggerSplitView): the docs page needs no CDN and no inline script.
    "SWAGGER_UI_DIST": f"/{STATIC_URL}vendor/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": f"/{STATIC_URL}vendor/swagger-ui/favicon-32x32.png",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # SQL debug logging would print feature bytes: binary values are redacted (DESIGN §6).
    "filters": {
        "redact_binary_sql": {"()": "speakerauth.logfilters.RedactBinarySQL"},
        "request_id": {"()": "speakerauth.request_id.RequestIDFilter"},
        "without_traceback": {"()": "speakerauth.logfilters.WithoutTraceback"},
    },
    "formatters": {"line": {"format": "%(levelname)s %(name)s request=%(request_id)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "line",
        }
    },
    "loggers": {
        "django.db.backends": {"filters": ["redact_binary_sql"]},
        "django.security.DisallowedHost": {"filters": ["without_traceback"]},
        # Lockouts are warnings; each failed sign-in (info) would be noise.
        "axes": {"level": "WARNING"},
    },
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
}

# Where development corpora live (tests, evaluation); never inside the repository.
SPEAKERAUTH_CORPUS_DIR = Path(
    env_str("SPEAKERAUTH_CORPUS_DIR", str(BASE_DIR.parent / "shared" / "data"))
)

# Verification (issue 4, DESIGN §5-6). All overridable from the environment; see the README.
VERIFICATION_CHALLENGE_DIGITS = env_int("VERIFICATION_CHALLENGE_DIGITS", 5, minimum=1)
if VERIFICATION_CHALLENGE_DIGITS > 16:
    raise ImproperlyConfigured("VERIFICATION_CHALLENGE_DIGITS must be <= 16")
VERIFICATION_CHALLENGE_TTL = env_int("VERIFICATION_CHALLENGE_TTL", 120, minimum=1)
# Scores let a claimant hill-climb; only staff see them unless this evaluation switch is on.
VERIFICATION_EXPOSE_SCORE = env_bool("VERIFICATION_EXPOSE_SCORE", False)
# Consecutive failures before a delay of VERIFICATION_LOCKOUT_DELAY seconds (doubling per further
# failure); after VERIFICATION_LOCKOUT_DISABLE_AFTER failures in a row the voice factor is off
# until a staff reset. VERIFICATION_LOCKOUT_FAILURES=0 turns the whole lockout off (evaluation
# only).
VERIFICATION_LOCKOUT_FAILURES = env_int("VERIFICATION_LOCKOUT_FAILURES", 5)
VERIFICATION_LOCKOUT_DELAY = env_int("VERIFICATION_LOCKOUT_DELAY", 30, minimum=1)
VERIFICATION_LOCKOUT_DISABLE_AFTER = env_int("VERIFICATION_LOCKOUT_DISABLE_AFTER", 50, minimum=1)
VERIFICATION_MIN_UTTERANCES_PER_DIGIT = env_int(
    "VERIFICATION_MIN_UTTERANCES_PER_DIGIT", 3, minimum=1
)
# Per worker process: the replay check's prepared references (about 8-10 KB per stored or recent
# utterance; a user with full memories has some 150). 0 keeps none (each attempt prepares all).
VERIFICATION_REPLAY_CACHE_MB = env_int("VERIFICATION_REPLAY_CACHE_MB", 48, minimum=0)
# E-mail the owner when failures lock their voice factor (first lock of a streak) or turn it off
# (verification/notifications.py); users without an address get none.
VERIFICATION_ALERT_EMAILS = env_bool("VERIFICATION_ALERT_EMAILS", True)
# Storage limitation (`manage.py apply_retention`, run daily): a voiceprint (utterances, model,
# fingerprints) whose owner has not enrolled or verified for this many days is deleted. 1095 days
# is the outer limit of Illinois' BIPA ("3 years after the individual's last interaction"); 0
# keeps voiceprints until their owner deletes them or withdraws consent.
VERIFICATION_VOICEPRINT_RETENTION_DAYS = env_int("VERIFICATION_VOICEPRINT_RETENTION_DAYS", 1095)
# Trusted reverse proxies in front of the app (Heroku: 1); the client address recorded in the
# audit log is then taken from X-Forwarded-For instead of REMOTE_ADDR.
VERIFICATION_PROXY_COUNT = env_int("VERIFICATION_PROXY_COUNT", 0)
