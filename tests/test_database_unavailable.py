"""The app answers 503 with Retry-After, not a 500 with a traceback, while the database is down."""

import pytest
from django.db import InterfaceError, OperationalError

from accounts import api as accounts_api
from accounts import views as accounts_views


def _database_down(*args, **kwargs):
    raise OperationalError('connection to server at "127.0.0.1", port 5432 failed')


def test_api_answers_503_json_with_retry_after_when_database_is_down(alice_api, monkeypatch):
    monkeypatch.setattr(accounts_api.MeSerializer, "to_representation", _database_down)

    response = alice_api.get("/api/v1/me/")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {
        "detail": "The service is temporarily unavailable; please retry shortly.",
        "code": "unavailable",
    }


def test_api_answers_503_when_connection_is_already_closed(alice_api, monkeypatch):
    def closed(*args, **kwargs):
        raise InterfaceError("connection already closed")

    monkeypatch.setattr(accounts_api.MeSerializer, "to_representation", closed)

    assert alice_api.get("/api/v1/me/").status_code == 503


def test_page_answers_plain_503_without_traceback_when_database_is_down(client, monkeypatch):
    monkeypatch.setattr(accounts_views, "render", _database_down)

    response = client.get("/")

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")
    assert b"Traceback" not in response.content
    assert b"5432" not in response.content


def test_other_errors_are_not_turned_into_503(alice_api, monkeypatch):
    def bug(*args, **kwargs):
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(accounts_api.MeSerializer, "to_representation", bug)

    with pytest.raises(ValueError, match="a bug"):
        alice_api.get("/api/v1/me/")
