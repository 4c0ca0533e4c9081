"""/healthz and /readyz: what a load balancer or an orchestrator asks before routing traffic."""

import pytest
from django.db import InterfaceError, OperationalError, connection

from speakerauth import health
from verification import services
from verification.management.commands.install_default_ubm import DEFAULT_PATH


@pytest.fixture(autouse=True)
def _migrations_unchecked():
    """Each test reads the migration state afresh (the process caches a positive answer)."""
    health._migrated.clear()
    yield
    health._migrated.clear()


@pytest.fixture
def installed_ubm(db):
    row, _ = services.background_model_install(blob=DEFAULT_PATH.read_bytes(), activate=True)
    return row


def test_liveness_answers_without_the_database(client):
    # No `db` fixture: pytest-django raises on any database access.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_probes_skip_the_host_check_and_the_https_redirect(client, settings, installed_ubm):
    """A probe comes over plain HTTP, addressed to the machine's own address."""
    settings.ALLOWED_HOSTS = ["speakerauth.example.com"]
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/healthz", HTTP_HOST="10.0.0.7:8000").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.0.0.7:8000").status_code == 200
    # Everything else still gets both.
    assert client.get("/", HTTP_HOST="10.0.0.7:8000").status_code == 400
    assert client.get("/", HTTP_HOST="speakerauth.example.com").status_code == 301


def test_ready_with_database_migrations_and_background_model(client, installed_ubm):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "background_model": "ok"},
    }
    assert "Retry-After" not in response
    assert not response.cookies


def test_not_ready_without_a_background_model(client, db):
    """Nobody could enroll: route no traffic here until `install_default_ubm` has run."""
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Cache-Control"] == "no-store"
    assert response.json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "background_model": "missing",
    }


def test_not_ready_while_a_migration_is_pending(client, installed_ubm):
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'verification' AND name = "
            "(SELECT MAX(name) FROM django_migrations WHERE app = 'verification')"
        )

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "ok",
        "migrations": "pending",
        "background_model": "unknown",
    }


def test_a_positive_migration_check_is_kept(client, installed_ubm, django_assert_max_num_queries):
    assert client.get("/readyz").status_code == 200

    # SELECT 1 and the background model: the migration table is not read again.
    with django_assert_max_num_queries(2):
        assert client.get("/readyz").status_code == 200


def test_not_ready_while_the_database_is_down(client, db, monkeypatch):
    def down():
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed')

    monkeypatch.setattr(health, "_database", down)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = response.json()
    assert body == {
        "status": "unavailable",
        "checks": {
            "database": "unavailable",
            "migrations": "unknown",
            "background_model": "unknown",
        },
    }
    assert b"5432" not in response.content


def test_not_ready_when_the_connection_was_lost(client, installed_ubm, monkeypatch):
    """A connection the server dropped raises InterfaceError on the next query."""

    def closed():
        raise InterfaceError("connection already closed")

    monkeypatch.setattr(health, "_background_model", closed)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unavailable"


def test_head_answers_with_status_only(client, installed_ubm):
    for path in ("/healthz", "/readyz"):
        response = client.head(path)
        assert response.status_code == 200
        assert response.content == b""


def test_other_methods_pass_through_to_the_app(client, db):
    """Only GET and HEAD are probes; a POST meets the app (no such page)."""
    assert client.post("/healthz").status_code == 404
    assert client.get("/healthz/").status_code == 404
