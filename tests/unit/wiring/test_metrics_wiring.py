"""A role's metrics exist before /metrics first answers: a scrape at start lists every series.

The dashboard and alert rules name ``ts_marketdata_rejected_total``; an alert on an absent series
fires at every start if the ingest role registers it only once its task first runs. The check runs
in a fresh interpreter, where nothing has imported the validator yet.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import asyncio, sys
from prometheus_client import REGISTRY
from tradesignals.config import load_settings
from tradesignals.wiring import build_feed, build_services

async def run():
    settings = load_settings(home=sys.argv[1], feed="sim")
    services = await build_services(settings)
    assert "tradesignals.marketdata.validate" not in sys.modules, "imported before the role starts"
    services.start_roles({"ingest"}, build_feed(settings))
    # No await in between: the ingest task has not run a single step yet.
    named = {m.name for m in REGISTRY.collect()}
    await services.close()
    return named

named = asyncio.run(run())
print("ts_marketdata_rejected" in named, "ts_marketdata_flagged" in named)
"""


def test_the_ingest_role_registers_its_counters_before_its_task_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "True True", done.stdout[-2000:] + done.stderr[-2000:]
