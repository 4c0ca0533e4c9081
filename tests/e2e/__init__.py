"""End-to-end tests of the pages in real Chromium (pytest -m browser)."""

# A host name that is not localhost, mapped to 127.0.0.1 by Chromium's host resolver: pages served
# there over plain HTTP are not a secure context, like a real deployment without HTTPS.
INSECURE_HOST = "speakerauth.test"
