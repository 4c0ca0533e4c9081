"""Settings must fail closed in production and read the database from DATABASE_URL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _import_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "-c", "import speakerauth.settings"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_without_secret_key_fails_closed():
    result = _import_settings(DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_without_allowed_hosts_fails_closed():
    result = _import_settings(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="x" * 60)
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS" in result.stderr


def test_production_with_values_loads():
    result = _import_settings(
        DJANGO_DEBUG="false", DJANGO_SECRET_KEY="x" * 60, DJANGO_ALLOWED_HOSTS="example.com"
    )
    assert result.returncode == 0, result.stderr


def test_debug_flag_must_be_a_boolean():
    result = _import_settings(DJANGO_DEBUG="maybe")
    assert result.returncode != 0
    assert "DJANGO_DEBUG must be true or false" in result.stderr


@pytest.mark.django_db
def test_database_comes_from_database_url():
    url = os.environ.get("DATABASE_URL", "")
    expected = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    assert connection.vendor == expected


def _database_engine(url: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if url is not None:
        env["DATABASE_URL"] = url
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from speakerauth import settings; print(settings.DATABASES['default']['ENGINE'])",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("url", "engine"),
    [
        (None, "django.db.backends.sqlite3"),
        ("", "django.db.backends.sqlite3"),
        ("postgres://postgres@127.0.0.1:5432/x", "django.db.backends.postgresql"),
        ("sqlite:////tmp/x.sqlite3", "django.db.backends.sqlite3"),
    ],
)
def test_database_url_selects_the_engine(url, engine):
    assert _database_engine(url) == engine


def _settings_value(expression: str, **env: str) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "ACCOUNTS_", "VERIFICATION_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", f"import speakerauth.settings as s; print(repr(({expression})))"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_login_lockout_defaults_and_switch():
    expression = (
        "s.AXES_ENABLED, s.AXES_FAILURE_LIMIT, s.AXES_LOCKOUT_PARAMETERS, s.AXES_COOLOFF_TIME"
    )
    assert _settings_value(expression) == (
        "(True, 10, [['username', 'ip_address']], datetime.timedelta(seconds=900))"
    )
    assert _settings_value("s.AXES_ENABLED", ACCOUNTS_LOGIN_FAILURES="0") == "False"
    assert _settings_value("s.AXES_LOCKOUT_PARAMETERS", ACCOUNTS_LOGIN_LOCKOUT_BY="username") == (
        "['username']"
    )


def test_login_lockout_key_must_be_known():
    result = _import_settings(ACCOUNTS_LOGIN_LOCKOUT_BY="everyone")
    assert result.returncode != 0
    assert "ACCOUNTS_LOGIN_LOCKOUT_BY must be one of" in result.stderr


def test_throttle_rate_is_checked_at_start():
    """DRF reads the rate per request: a bad value must stop the start, not 500 every request."""
    rate = "s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['verification']"
    assert _settings_value(rate) == "'120/min'"
    assert _settings_value(rate, VERIFICATION_THROTTLE_RATE="30/Hour") == "'30/hour'"
    assert _settings_value(rate, VERIFICATION_THROTTLE_RATE="off") == "None"
    assert _settings_value(rate, VERIFICATION_THROTTLE_RATE="") == "'120/min'"
    for bad in ("120", "fast", "0/min", "120/fortnight", "-5/min"):
        result = _import_settings(VERIFICATION_THROTTLE_RATE=bad)
        assert result.returncode != 0, bad
        assert "VERIFICATION_THROTTLE_RATE must be requests/period" in result.stderr
