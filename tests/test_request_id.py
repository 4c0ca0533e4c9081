"""X-Request-ID: kept when it looks like an id, made up otherwise, returned, and in the logs."""

import logging
import re

import pytest
from django.conf import settings

from speakerauth.request_id import RequestIDFilter

UUID_HEX = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def records():
    """Records of django.request, through the filter the console handler uses."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record)

    handler = Keep()
    handler.addFilter(RequestIDFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    yield seen
    logger.removeHandler(handler)


def test_a_fresh_id_when_none_is_sent(client, db):
    response = client.get("/")

    assert UUID_HEX.fullmatch(response["X-Request-ID"])
    assert client.get("/")["X-Request-ID"] != response["X-Request-ID"]


def test_the_routers_id_is_kept(client, db):
    heroku_style = "5f1b8a1e-8c3e-4a59-9b1e-2d6f0c8e4a7b"

    response = client.get("/", HTTP_X_REQUEST_ID=heroku_style)

    assert response["X-Request-ID"] == heroku_style


@pytest.mark.parametrize(
    "sent",
    ["short", "with space in it", "evil\r\nINFO forged line", "x" * 201, "<script>1</script>"],
)
def test_anything_else_is_replaced(client, db, sent):
    assert UUID_HEX.fullmatch(client.get("/", HTTP_X_REQUEST_ID=sent)["X-Request-ID"])


def test_log_lines_of_a_request_carry_its_id(client, db, records):
    response = client.get("/no/such/page/", HTTP_X_REQUEST_ID="trace-0123456789")

    assert response.status_code == 404
    assert [r.request_id for r in records if "Not Found" in r.getMessage()] == ["trace-0123456789"]
    # Once the response is closed, lines belong to no request.
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "after", None, None)
    RequestIDFilter().filter(outside)
    assert outside.request_id == "-"


def test_the_console_handler_prints_the_id():
    handler = settings.LOGGING["handlers"]["console"]
    assert "request_id" in handler["filters"]
    assert "%(request_id)s" in settings.LOGGING["formatters"][handler["formatter"]]["format"]


def test_a_foreign_host_header_is_one_warning_line(client, db, settings, caplog):
    settings.ALLOWED_HOSTS = ["voice.example.com"]

    with caplog.at_level(logging.WARNING, logger="django.security"):
        response = client.get("/", HTTP_HOST="scanner.example.net")

    assert response.status_code == 400
    (record,) = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert record.levelname == "WARNING"
    assert record.exc_info is None
    assert "Traceback" not in caplog.text
