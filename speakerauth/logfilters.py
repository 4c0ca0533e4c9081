"""Logging filters that keep biometric data out of the application logs (DESIGN §6).

Features are stored as binary columns, so the only way they can reach a log is Django's SQL
debug logging (``django.db.backends`` at DEBUG, on with ``DEBUG=True`` or a debug cursor), which
prints every query with its parameters: the raw feature bytes, hex-encoded. This filter replaces
binary literals and parameters with their length before the record is formatted anywhere.
"""

from __future__ import annotations

import logging
import re

# Postgres (psycopg2 renders bytea as '\x...'), SQLite (X'...') and MySQL (0x...) literals.
_BINARY_LITERAL = re.compile(
    r"'\\\\?x[0-9a-fA-F]{8,}'(::bytea)?|[xX]'[0-9a-fA-F]{8,}'|\b0x[0-9a-fA-F]{8,}\b"
)


def _redact_sql(sql: str) -> str:
    return _BINARY_LITERAL.sub(lambda m: f"<binary {len(m.group(0)) // 2} bytes>", sql)


def _redact_param(value):
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<binary {len(value)} bytes>"
    if type(value).__name__ == "Binary":  # psycopg2.extensions.Binary wrapping bytes
        return "<binary>"
    if isinstance(value, list | tuple):
        return type(value)(_redact_param(v) for v in value)
    if isinstance(value, dict):
        return {k: _redact_param(v) for k, v in value.items()}
    return value


class RedactBinarySQL(logging.Filter):
    """For ``django.db.backends``: no binary column value in the SQL text or parameters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "sql"):
            record.sql = _redact_sql(str(record.sql))
        if hasattr(record, "params"):
            record.params = _redact_param(record.params)
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _redact_sql(a) if isinstance(a, str) else _redact_param(a) for a in record.args
            )
        return True


class WithoutTraceback(logging.Filter):
    """One line at WARNING for what a client caused, not an ERROR with a traceback: Django logs a
    foreign ``Host`` header (scanners send them all day) as an error with the stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = record.exc_text = record.stack_info = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
