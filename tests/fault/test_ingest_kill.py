"""`kill -9` of the ingest process mid-replay: the restart resumes after what was published, no bar twice.

`serve --role ingest` replays a file (paced) into Redis while `serve --role engine` works; the test
kills ingest with SIGKILL part-way, then starts it again on the same file. The restarted process
reads its stored position (``ingest_positions``, ADR 0025) and what the bus holds after it, runs the
already-published bars through its validator without sending them, and publishes the rest. Then:
every bar is on the bus exactly once, the store holds exactly the clean run's signals and statuses
with one event of each, and the ledger verifies.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest
from faultkit import (
    PARTITIONS,
    Cluster,
    compare,
    reference,
    replay_bars,
    stored,
    validated,
    wait_until,
    write_replay_csv,
)

from tradesignals.bus import topics
from tradesignals.storage.db import make_engine, migrate

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.slow]


def test_kill_9_of_ingest_mid_replay_resumes_without_duplicate_bars(
    fresh_pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    deadline = started + 150
    bars = replay_bars(per_partition=2, days=250, seed=17)
    expected = reference(validated(bars), tmp_path / "reference")
    replay = write_replay_csv(bars, tmp_path / "replay.csv")
    db = make_engine(fresh_pg_url)
    migrate(db)
    cluster = Cluster(fresh_pg_url, redis_url, redis_prefix, tmp_path)
    engine = cluster.start_engine("engine")
    figures: dict[str, object] = {}
    try:
        wait_until(
            "the engine to own every partition",
            lambda: sum(cluster.holders().values()) == PARTITIONS,
            deadline,
            [engine],
        )
        feed = ("--feed", f"replay:{replay}")
        first = cluster.start_role("ingest-1", "ingest", *feed, env={"TS_SPEED": str(250 * 86_400 / 15)})
        wait_until(
            "40% of the bars on the bus",
            lambda: cluster.published() >= len(bars) * 2 // 5,
            deadline,
            [engine, first],
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        figures["published_at_kill"] = cluster.published()
        assert figures["published_at_kill"] < len(bars)  # killed mid-replay
        second = cluster.start_role("ingest-2", "ingest", *feed, env={"TS_SPEED": "inf"})
        wait_until("the restarted ingest to finish", lambda: second.poll() is not None, deadline, [engine])
        # It exits only once its recorder has stored every bar (the first one's unacked ones too):
        # a replay's end must not leave history with a hole, nor health a recorder down with bars waiting.
        history_drained_at_exit = cluster.group_drained(topics.MARKET_BARS, "history")
        wait_until("every bar to be handled", cluster.drained, deadline, [engine])
        copies = cluster.bar_copies()
    finally:
        cluster.stop()
    second_log = cluster.logs[-1].read_text()
    status, events = stored(db)
    db.dispose()
    start_line = next(line for line in second_log.splitlines() if "ingest.start" in line)
    resumed = re.search(r"resumed=(\d+)", second_log)
    figures |= {
        "bars": len(bars),
        "resumed_position": start_line.split("ingest.start", 1)[1].strip(),
        "skipped_at_restart": int(resumed.group(1)) if resumed else None,
        "bars_on_bus": sum(copies.values()),
        "bars_twice_on_bus": sum(1 for n in copies.values() if n > 1),
        **compare(expected, status, events),
        "wall_s": round(time.monotonic() - started, 2),
    }
    print("FAULT ingest_kill", json.dumps(figures))
    assert second.returncode == 0, second_log[-3000:]
    assert "Traceback" not in second_log
    assert history_drained_at_exit and "recorder.drained" in second_log, second_log[-3000:]
    # It resumed: the bars published before the kill were not sent again (all of them skipped).
    assert figures["skipped_at_restart"] == figures["published_at_kill"]
    assert figures["bars_on_bus"] == len(validated(bars)) and figures["bars_twice_on_bus"] == 0
    assert figures["lost"] == figures["extra"] == figures["duplicated_events"] == 0
    assert status == expected
    verify = cluster.ledger_verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr
