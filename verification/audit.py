"""Tamper evidence of the audit tables: canonical row content, SHA-256 hash chain, chain walk.

Pure functions on plain values (no Django): a row is a ``dict`` of its audited fields. Each row
stores ``prev_hash`` (the previous row's ``entry_hash``, or GENESIS for the first) and
``entry_hash = sha256(canonical(row, prev_hash))``, so editing, deleting or reordering any row
breaks every later link. Rewriting the whole tail is only caught by comparing the head hash with
one recorded elsewhere (``verify_audit --expect-head``).

>>> first = entry_hash("attempt", {"seq": 1, "decision": "reject"}, GENESIS)
>>> walk("attempt", [({"seq": 1, "decision": "reject"}, GENESIS, first)]).ok
True
>>> walk("attempt", [({"seq": 1, "decision": "accept"}, GENESIS, first)]).broken_at
1
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

GENESIS = "0" * 64


def _plain(value):
    """One JSON-stable representation per value: datetimes in UTC with microseconds, floats by
    their shortest round-trip repr (what the database gives back), non-finite floats as text."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("audit timestamps must be timezone-aware")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def canonical(chain: str, content: Mapping, prev_hash: str) -> bytes:
    """The exact bytes that are hashed: sorted-key compact JSON of the chain name, the row's
    audited fields and the previous row's hash."""
    document = {"chain": chain, "content": _plain(dict(content)), "prev": prev_hash}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


def entry_hash(chain: str, content: Mapping, prev_hash: str) -> str:
    return hashlib.sha256(canonical(chain, content, prev_hash)).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    chain: str
    rows: int
    head: str
    broken_at: int | None = None  # seq of the first row that does not verify
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def walk(chain: str, rows: Iterable[tuple[Mapping, str, str]]) -> ChainReport:
    """Check rows ``(content, prev_hash, entry_hash)`` in chain order (``content["seq"]``
    ascending). Stops at the first row whose link or hash does not verify."""
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    for content, prev, stored in rows:
        seq = content["seq"]
        if seq != expected_seq:
            return ChainReport(
                chain, count, expected_prev, seq, f"expected seq {expected_seq}, found {seq}"
            )
        if prev != expected_prev:
            return ChainReport(
                chain, count, expected_prev, seq, "prev_hash is not the previous row's hash"
            )
        if entry_hash(chain, content, prev) != stored:
            return ChainReport(
                chain, count, expected_prev, seq, "content does not match entry_hash"
            )
        expected_prev = stored
        expected_seq += 1
        count += 1
    return ChainReport(chain, count, expected_prev)
