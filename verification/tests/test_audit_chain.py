"""verification.audit on plain values (no database): canonical content and the chain walk."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone

import pytest

from verification import audit

ROW = {"seq": 1, "created_at": datetime(2026, 12, 1, 18, 0, tzinfo=UTC), "score": -0.1}


def _chain(n: int) -> list[tuple[dict, str, str]]:
    rows, prev = [], audit.GENESIS
    for seq in range(1, n + 1):
        content = {**ROW, "seq": seq, "score": seq / 7}
        digest = audit.entry_hash("attempt", content, prev)
        rows.append((content, prev, digest))
        prev = digest
    return rows


def test_module_doctests_pass():
    assert doctest.testmod(audit).failed == 0


def test_canonical_content_ignores_key_order():
    reordered = dict(reversed(list(ROW.items())))
    assert audit.canonical("attempt", ROW, audit.GENESIS) == audit.canonical(
        "attempt", reordered, audit.GENESIS
    )


def test_the_same_instant_in_another_zone_hashes_the_same():
    shifted = {**ROW, "created_at": ROW["created_at"].astimezone(timezone(timedelta(hours=5)))}
    assert audit.entry_hash("attempt", shifted, audit.GENESIS) == audit.entry_hash(
        "attempt", ROW, audit.GENESIS
    )


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        audit.canonical("attempt", {**ROW, "created_at": datetime(2026, 12, 1)}, audit.GENESIS)


def test_the_chain_name_is_part_of_the_hash():
    assert audit.entry_hash("attempt", ROW, audit.GENESIS) != audit.entry_hash(
        "event", ROW, audit.GENESIS
    )


def test_the_smallest_float_change_changes_the_hash():
    nudged = {**ROW, "score": -0.1 + 2**-56}
    assert nudged["score"] != ROW["score"]
    assert audit.entry_hash("attempt", nudged, audit.GENESIS) != audit.entry_hash(
        "attempt", ROW, audit.GENESIS
    )


def test_an_intact_chain_verifies_and_reports_its_head():
    rows = _chain(5)
    report = audit.walk("attempt", rows)
    assert (report.ok, report.rows, report.head) == (True, 5, rows[-1][2])


def test_an_empty_chain_verifies_with_the_genesis_head():
    assert audit.walk("attempt", []).head == audit.GENESIS


def test_walk_names_the_first_edited_row():
    rows = _chain(5)
    rows[3][0]["score"] = 99.0
    report = audit.walk("attempt", rows)
    assert (report.broken_at, report.rows) == (4, 3)
    assert "content" in report.problem


def test_walk_names_the_row_after_a_gap():
    rows = _chain(5)
    del rows[1]
    assert audit.walk("attempt", rows).broken_at == 3


def test_walk_notices_two_rows_swapped():
    rows = _chain(4)
    rows[1], rows[2] = rows[2], rows[1]
    assert audit.walk("attempt", rows).broken_at == 3
