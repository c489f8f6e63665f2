"""`kill -9` of one of two engine processes mid-stream loses no signal and duplicates none.

The reference is a clean single-process run of the same bars through the same engine builder the
`serve` role uses. Then two `tradesignals serve --role engine` processes share the partitions over
real Redis and PostgreSQL; one is killed with SIGKILL while bars flow, the other takes its
partitions (after the lease, ``TS_BUS_LEASE_S``), rebuilds their state from the retained stream and
carries on (ADR 0015). Afterwards the store must hold exactly the reference's signals, each with the
reference's final status, one ``created`` and at most one ``closed`` event each, and
``tradesignals ledger verify`` must pass. Without the rebuild this test lost 21 of 397 signals.

Bounded: every wait has a deadline and waits on an observable state (group membership, leases,
consumer-group lag in Redis), never on a fixed sleep.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest
from faultkit import PARTITIONS, Cluster, compare, reference, replay_bars, stored, wait_until

from tradesignals.storage.db import make_engine, migrate

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.slow]


def test_kill_9_of_one_engine_loses_and_duplicates_no_signal(
    fresh_pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    deadline = started + 120
    bars = replay_bars()
    expected = reference(bars, tmp_path / "reference")
    assert len(expected) > 300  # enough signals that a lost state shows

    db = make_engine(fresh_pg_url)
    migrate(db)  # once, before two processes start: they must not race to create the schema
    cluster = Cluster(fresh_pg_url, redis_url, redis_prefix, tmp_path)
    victim, survivor = cluster.start_engine("engine-a"), cluster.start_engine("engine-b")
    figures: dict[str, object] = {}
    try:
        # Ready: both members hold their fair share (4 + 4 leases) before any bar is published.
        wait_until(
            "both engines to own half the partitions",
            lambda: sorted(cluster.holders().values()) == [PARTITIONS // 2] * 2,
            deadline,
            cluster.procs,
        )
        figures["ready_s"] = round(time.monotonic() - started, 2)
        first_cut, second_cut = len(bars) * 2 // 5, len(bars) * 3 // 5
        cluster.publish(bars[:first_cut])
        wait_until("the first 40% to be handled", cluster.drained, deadline, cluster.procs)
        victim_name = next(h for h in cluster.holders() if h.endswith(f"-{victim.pid}"))
        victim_parts = [p for p, h in enumerate(cluster.r.mget(cluster.leases)) if h == victim_name]
        cluster.publish(bars[first_cut:second_cut])
        victim.send_signal(signal.SIGKILL)  # mid-stream: it is working through the next 20%
        killed_at = time.monotonic()
        victim.wait(timeout=10)
        figures["pending_at_kill"] = sum(
            cluster.r.xpending(cluster.streams[p], "engine")["pending"] for p in victim_parts
        )
        cluster.publish(bars[second_cut:])
        wait_until(
            "the survivor to take every partition",
            lambda: list(cluster.holders().values()) == [PARTITIONS],
            deadline,
            [survivor],
        )
        figures["takeover_s"] = round(time.monotonic() - killed_at, 2)
        wait_until("every bar to be handled", cluster.drained, deadline, [survivor])
        figures["kill_to_drained_s"] = round(time.monotonic() - killed_at, 2)
    finally:
        cluster.stop()
    survivor_log = cluster.logs[1].read_text()
    rebuilt = [
        {k: int(v) for k, v in re.findall(r"(partition|replayed)=(\d+)", line)}
        for line in survivor_log.splitlines()
        if "engine.partition_rebuilt" in line
    ]
    status, events = stored(db)
    db.dispose()
    figures |= {"bars": len(bars), **compare(expected, status, events)}
    figures["rebuilt_partitions"] = sorted(e["partition"] for e in rebuilt if e["replayed"] > 0)
    figures["replayed_bars"] = sum(e["replayed"] for e in rebuilt)
    figures["wall_s"] = round(time.monotonic() - started, 2)
    print("FAULT engine_kill", json.dumps(figures))
    assert survivor.returncode == 0, survivor_log[-3000:]
    assert "Traceback" not in survivor_log
    # The victim's partitions were rebuilt from what it had acked (leases may also have moved
    # earlier, under load, which the same rebuild covers).
    assert victim_parts and set(victim_parts) <= set(figures["rebuilt_partitions"])  # type: ignore[arg-type]
    assert figures["lost"] == figures["extra"] == figures["duplicated_events"] == 0
    assert status == expected  # same ids, same final status each
    assert all(events[(sid, "created")] == 1 for sid in expected)
    verify = cluster.ledger_verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr
