"""The ledger recipe: canonical JSON, the hash, and verify naming the first bad entry."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradesignals.domain import ledger
from tradesignals.domain.ledger import (
    GENESIS,
    Chain,
    LedgerEntry,
    Problem,
    canonical_json,
    entry_body,
    entry_hash,
    format_at,
    verify,
)
from tradesignals.domain.signals import SignalEventKind, SignalStatus

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def chain(n: int) -> list[LedgerEntry]:
    """``n`` entries over a few signals, with the kinds and data shapes the repository writes."""
    c = Chain()
    out = []
    for i in range(n):
        sid = f"{i // 3:022x}"
        kind = (SignalEventKind.CREATED, SignalEventKind.UPDATED, SignalEventKind.CLOSED)[i % 3]
        data: dict[str, Any] = {"i": i, "price": 100.0 + i / 7, "note": f"é{i}", "tags": ["a", i]}
        out.append(c.append(sid, kind, T0 + timedelta(minutes=i), data))
    return out


# --- canonical JSON ------------------------------------------------------------------------------


def test_keys_sorted_no_whitespace_at_every_depth() -> None:
    obj = {"b": 1, "a": {"z": [3, {"y": 1, "x": 2}], "c": None}, "A": True}
    assert canonical_json(obj) == b'{"A":true,"a":{"c":null,"z":[3,{"x":2,"y":1}]},"b":1}'


def test_utf8_not_escaped_and_control_characters_escaped() -> None:
    assert canonical_json({"r": "RSI 74 → 61"}) == '{"r":"RSI 74 → 61"}'.encode()
    assert canonical_json('a\nb"c\\') == b'"a\\nb\\"c\\\\"'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),
        (5.0, "5.0"),
        (5, "5"),
        (-0.0, "-0.0"),
        (1e22, "1e+22"),
        (1e-7, "1e-07"),
        (0.1 + 0.2, "0.30000000000000004"),
        (123456789.125, "123456789.125"),
        (2**70, "1180591620717411303424"),
    ],
)
def test_numbers_in_shortest_round_trip_form(value: float, text: str) -> None:
    assert canonical_json(value) == text.encode()
    assert canonical_json(value) == repr(value).encode()


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_round_trips_exactly(x: float) -> None:
    parsed = json.loads(canonical_json(x))
    assert parsed == x and type(parsed) is float
    assert math.copysign(1, parsed) == math.copysign(1, x)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match=r"\$\.pnl\[1\] is"):
        canonical_json({"pnl": [1, bad]})


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({1: "x"}, "non-string key 1"),
        ({"s": {1, 2}}, "is a set"),
        ({"b": b"raw"}, "is a bytes"),
        ({"s": "\ud800"}, "lone surrogate"),
        ({"t": datetime(2026, 1, 5)}, "naive datetime"),
    ],
)
def test_what_json_would_change_silently_is_refused(bad: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        canonical_json(bad)


def test_datetimes_are_utc_with_microseconds_and_z() -> None:
    est = timezone(timedelta(hours=-5))
    assert format_at(datetime(2026, 3, 2, 9, 31, 7, tzinfo=est)) == "2026-03-02T14:31:07.000000Z"
    assert format_at(datetime(2026, 3, 2, 9, 31, 7, 5, tzinfo=UTC)) == "2026-03-02T09:31:07.000005Z"
    assert format_at(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00.000000Z"
    assert canonical_json({"at": datetime(2026, 3, 2, 9, 31, 7, tzinfo=est)}) == (
        b'{"at":"2026-03-02T14:31:07.000000Z"}'
    )


def test_enums_are_their_value_and_tuples_lists() -> None:
    assert canonical_json({"k": SignalEventKind.CLOSED, "s": (SignalStatus.OPEN, 1)}) == (
        b'{"k":"closed","s":["open",1]}'
    )


# --- the hash ------------------------------------------------------------------------------------


def test_entry_hash_is_sha256_of_raw_prev_bytes_then_canonical_body() -> None:
    body = entry_body(1, "a" * 22, "created", T0, {"x": 1.5})
    expected_text = b'{"at":"2026-01-05T15:00:00.000000Z","data":{"x":1.5},"kind":"created","seq":1,"signal_id":"aaaaaaaaaaaaaaaaaaaaaa"}'
    assert canonical_json(body) == expected_text
    assert entry_hash(GENESIS, body) == hashlib.sha256(bytes(32) + expected_text).hexdigest()
    # The raw 32 bytes, not the hex text: the two readings must not both be right.
    assert entry_hash(GENESIS, body) != hashlib.sha256(GENESIS.encode() + expected_text).hexdigest()


@pytest.mark.parametrize("prev", ["0" * 63, "A" * 64, " " + "0" * 63, "g" * 64, "00 " * 21 + "0"])
def test_entry_hash_refuses_other_spellings_of_prev_hash(prev: str) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        entry_hash(prev, {})


def test_hash_depends_on_int_versus_float() -> None:
    a = entry_hash(GENESIS, entry_body(1, "s", "updated", T0, {"stop": 5}))
    b = entry_hash(GENESIS, entry_body(1, "s", "updated", T0, {"stop": 5.0}))
    assert a != b


# --- verify --------------------------------------------------------------------------------------


def test_an_intact_chain_verifies_and_reports_its_head() -> None:
    entries = chain(10)
    result = verify(entries)
    assert result.ok and result.checked == 10 and result.first_bad is None and result.reason is None
    assert result.head == entries[-1].hash and result.head_seq == 10
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))


def test_an_empty_ledger_is_ok_with_the_genesis_head() -> None:
    result = verify([])
    assert result.ok and result.checked == 0 and result.head == GENESIS and result.head_seq == 0


def test_a_changed_row_is_a_hash_mismatch_at_that_seq() -> None:
    entries = chain(8)
    entries[4] = dataclasses.replace(entries[4], data={**(entries[4].data or {}), "price": 1.0})
    result = verify(entries)
    assert not result.ok and result.first_bad == 5 and result.problem is Problem.HASH_MISMATCH
    assert result.checked == 4 and result.head == entries[3].hash
    assert result.reason is not None and result.reason.startswith("hash mismatch: seq 5")


@pytest.mark.parametrize("field", ["signal_id", "kind", "at", "seq_in_body"])
def test_every_hashed_field_is_covered(field: str) -> None:
    entries = chain(6)
    e = entries[2]
    changed = {
        "signal_id": dataclasses.replace(e, signal_id="f" * 22),
        "kind": dataclasses.replace(e, kind="updated" if e.kind != "updated" else "closed"),
        "at": dataclasses.replace(e, at=e.at + timedelta(microseconds=1)),
        "seq_in_body": dataclasses.replace(e, hash=entries[3].hash),
    }[field]
    entries[2] = changed
    result = verify(entries)
    assert not result.ok and result.first_bad == 3 and result.problem is Problem.HASH_MISMATCH


def test_a_changed_row_whose_hash_was_recomputed_breaks_the_next_link() -> None:
    entries = chain(8)
    e = entries[4]
    forged = dataclasses.replace(e, data={"price": 1.0})
    entries[4] = dataclasses.replace(forged, hash=forged.computed_hash())
    result = verify(entries)
    assert not result.ok and result.first_bad == 6 and result.problem is Problem.BROKEN_LINK


def test_a_deleted_row_is_a_gap_named_by_the_missing_seq() -> None:
    entries = chain(8)
    del entries[3]
    result = verify(entries)
    assert not result.ok and result.first_bad == 4 and result.problem is Problem.SEQ_GAP
    assert result.reason == "seq gap: seq 4 missing (next entry is seq 5)"
    del entries[3:5]
    assert verify(entries).reason == "seq gap: seq 4..6 missing (next entry is seq 7)"
    assert verify(chain(3)[1:]).first_bad == 1  # the very first one deleted


def test_a_deleted_row_with_later_seqs_renumbered_is_still_caught() -> None:
    entries = chain(8)
    renumbered = entries[:3] + [dataclasses.replace(e, seq=e.seq - 1) for e in entries[4:]]
    result = verify(renumbered)
    assert not result.ok and result.first_bad == 4 and result.problem is Problem.HASH_MISMATCH


def test_two_rows_swapped_in_place_is_a_hash_mismatch_at_the_first() -> None:
    """The rows' contents exchanged, each seq left where it was (an UPDATE swapping two rows)."""
    entries = chain(8)
    a, b = entries[2], entries[5]
    entries[2] = dataclasses.replace(b, seq=a.seq)
    entries[5] = dataclasses.replace(a, seq=b.seq)
    result = verify(entries)
    assert not result.ok and result.first_bad == 3 and result.problem is Problem.HASH_MISMATCH


def test_two_rows_swapped_and_rehashed_is_a_broken_link_at_the_first() -> None:
    entries = chain(8)
    a, b = entries[2], entries[5]
    for i, (src, seq) in enumerate([(b, a.seq), (a, b.seq)]):
        moved = dataclasses.replace(src, seq=seq)
        entries[(2, 5)[i]] = dataclasses.replace(moved, hash=moved.computed_hash())
    result = verify(entries)
    assert not result.ok and result.first_bad == 3 and result.problem is Problem.BROKEN_LINK


def test_entries_given_out_of_order_are_named() -> None:
    entries = chain(6)
    result = verify(entries[:4] + entries[2:])  # a page served twice
    assert not result.ok and result.first_bad == 3 and result.problem is Problem.SEQ_OUT_OF_ORDER
    assert result.reason == "seq out of order: seq 3 follows seq 4"
    swapped = [entries[0], entries[2], entries[1], *entries[3:]]
    assert verify(swapped).problem is Problem.SEQ_GAP  # seq 3 arrives where 2 belongs


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda e: dataclasses.replace(e, prev_hash="XYZ"),
        lambda e: dataclasses.replace(e, data={"pnl": float("nan")}),
        lambda e: dataclasses.replace(e, data={"n": {1, 2}}),
        lambda e: dataclasses.replace(e, at=datetime(2026, 1, 1)),
    ],
)
def test_malformed_rows_are_reported_never_raised(corrupt: Any) -> None:
    entries = chain(5)
    entries[2] = corrupt(entries[2])
    result = verify(entries)
    assert not result.ok and result.first_bad == 3 and result.problem is Problem.UNHASHABLE


def test_a_later_stretch_verifies_from_its_anchor() -> None:
    entries = chain(9)
    assert verify(entries[4:], prev_hash=entries[3].hash, first_seq=5).ok
    assert verify(entries[4:]).problem is Problem.SEQ_GAP
    wrong_anchor = verify(entries[4:], prev_hash=entries[2].hash, first_seq=5)
    assert wrong_anchor.problem is Problem.BROKEN_LINK and wrong_anchor.first_bad == 5


def test_verify_streams_and_stops_at_the_first_bad_entry() -> None:
    entries = chain(20)
    entries[5] = dataclasses.replace(entries[5], hash="0" * 64)
    pulled = 0

    def gen() -> Iterator[LedgerEntry]:
        nonlocal pulled
        for e in entries:
            pulled += 1
            yield e

    assert verify(gen()).first_bad == 6
    assert pulled == 6


def test_sealed_entries_are_checked_by_their_links_only() -> None:
    entries = chain(9)
    sealed = [
        dataclasses.replace(e, data=None) if e.signal_id == entries[6].signal_id else e for e in entries
    ]
    result = verify(sealed)
    assert result.ok and result.sealed == 3 and result.checked == 9
    # A sealed hash altered while sealed: the next entry no longer links to it.
    sealed[6] = dataclasses.replace(sealed[6], hash="ab" * 32)
    broken = verify(sealed)
    assert broken.problem is Problem.BROKEN_LINK and broken.first_bad == 8
    sealed[6] = dataclasses.replace(sealed[6], hash="not hex")
    assert verify(sealed).problem is Problem.UNHASHABLE


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=11),
    st.sampled_from(["data", "signal_id", "kind", "at", "prev_hash", "hash", "drop", "swap_next"]),
)
def test_any_single_tampering_fails_at_or_before_the_tampered_seq(i: int, how: str) -> None:
    entries = chain(12)
    e = entries[i]
    if how == "drop":
        del entries[i]
    elif how == "swap_next":
        if i == len(entries) - 1:
            return
        entries[i], entries[i + 1] = (
            dataclasses.replace(entries[i + 1], seq=e.seq),
            dataclasses.replace(e, seq=e.seq + 1),
        )
    else:
        value: Any = {
            "data": {**(e.data or {}), "i": -1},
            "signal_id": "z" * 22,
            "kind": "closed" if e.kind != "closed" else "created",
            "at": e.at + timedelta(seconds=1),
            "prev_hash": "1" * 64,
            "hash": "2" * 64,
        }[how]
        entries[i] = dataclasses.replace(e, **{how: value})
    result = verify(entries)
    if how == "drop" and i == 11:
        assert result.ok  # the newest entry dropped: only a published head can tell (see docs)
        assert result.head == entries[-1].hash != e.hash
        return
    assert not result.ok
    assert result.first_bad is not None and result.first_bad <= i + 2


# --- the documented recipe -----------------------------------------------------------------------


def documented_script() -> str:
    """The verification script exactly as the module docstring prints it."""
    doc = ledger.__doc__ or ""
    after = doc.split("too)::\n\n", 1)[1]
    lines = []
    for line in after.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def as_api_json(entries: list[LedgerEntry]) -> list[dict[str, Any]]:
    """Entries as ``GET /api/ledger`` serves them, through a JSON text and back."""
    served = [
        {
            "seq": e.seq,
            "signal_id": e.signal_id,
            "kind": e.kind,
            "at": format_at(e.at),
            "data": e.data,
            "sealed": e.data is None,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e in entries
    ]
    parsed: list[dict[str, Any]] = json.loads(json.dumps(served))
    return parsed


def run_script(entries: list[dict[str, Any]]) -> str | None:
    """The script's head on success, None when its assertions fail."""
    printed: list[str] = []
    namespace: dict[str, Any] = {
        "entries": entries,
        "print": lambda *a: printed.append(" ".join(map(str, a))),
    }
    try:
        exec(documented_script(), namespace)
    except AssertionError:
        return None
    return printed[-1].removeprefix("ok, head ")


def test_the_documented_script_is_short_and_agrees_on_an_intact_chain() -> None:
    script = documented_script()
    assert 8 <= len(script.strip().splitlines()) <= 11
    entries = chain(12)
    assert run_script(as_api_json(entries)) == verify(entries).head == entries[-1].hash


def test_the_documented_script_agrees_on_tampered_and_sealed_chains() -> None:
    entries = chain(9)
    changed = list(entries)
    changed[3] = dataclasses.replace(changed[3], data={"i": 99})
    assert run_script(as_api_json(changed)) is None and not verify(changed).ok
    dropped = entries[:2] + entries[3:]
    assert run_script(as_api_json(dropped)) is None and not verify(dropped).ok
    sealed = [dataclasses.replace(e, data=None) if e.seq in (2, 3) else e for e in entries]
    assert run_script(as_api_json(sealed)) == verify(sealed).head == entries[-1].hash


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=5), min_size=1, max_size=5))
def test_the_documented_script_agrees_on_any_json_data(datas: list[dict[str, Any]]) -> None:
    c = Chain()
    entries = [c.append("s" * 22, "updated", T0 + timedelta(seconds=i), d) for i, d in enumerate(datas)]
    assert verify(entries).ok
    assert run_script(as_api_json(entries)) == entries[-1].hash
