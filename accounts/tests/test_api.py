from django.urls import reverse
from rest_framework.authtoken.models import Token

from conftest import PASSWORD


def test_token_issue_with_password(api, alice):
    response = api.post(
        reverse("api-token"), {"username": "alice", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["token"] == Token.objects.get(user=alice).key


def test_token_refused_for_wrong_password(api, alice):
    response = api.post(reverse("api-token"), {"username": "alice", "password": "x"}, format="json")
    assert response.status_code == 400
    assert not Token.objects.filter(user=alice).exists()


def test_me_anonymous_is_401(api, db):
    assert api.get(reverse("api-me")).status_code == 401


def test_me_with_token(api, alice):
    token = Token.objects.create(user=alice)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = api.get(reverse("api-me"))
    assert response.status_code == 200
    assert response.json()["username"] == "alice"


def test_me_with_session(client, alice):
    client.force_login(alice)
    response = client.get(reverse("api-me"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["id"] == alice.id


def test_browsable_api_renders_html(client, alice):
    client.force_login(alice)
    response = client.get(reverse("api-me"), HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"<html" in response.content


def test_openapi_schema_is_served(api, db):
    response = api.get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/v1/me/" in response.json()["paths"]
