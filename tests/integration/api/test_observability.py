"""The operations files hold: alert rules pass promtool, and every metric the dashboard and the
rules name is one our roles really expose on /metrics.

The roles run as an operator runs them: `serve --role engine --role ingest` (no HTTP; metrics on
TS_METRICS_PORT, loopback) and `serve --role api` (/metrics behind the operator token), over real
PostgreSQL and Redis. Their /metrics texts together must name every metric of
``ops/grafana/tradesignals.json`` and ``ops/prometheus/alerts.yml``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tradesignals.signing import Ed25519Signer

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "ops" / "grafana" / "tradesignals.json"
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "ops" / "prometheus" / "alerts_test.yml"
METRIC = re.compile(r"\b(ts_[a-z0-9_]+)")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        msg = "promtool is not installed (Debian package prometheus; .ci/run installs it)"
        if os.environ.get("TS_REQUIRE_SERVICES") == "1":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return found


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    """Each rule's ``expr:`` (one line each in alerts.yml; promtool checks the file is valid YAML)."""
    return re.findall(r"^\s*expr: (.+)$", RULES.read_text(), flags=re.MULTILINE)


def test_promtool_checks_the_rules_and_their_unit_tests() -> None:
    tool = promtool()
    check = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(rule_exprs())} rules found" in check.stdout + check.stderr
    tested = subprocess.run(
        [tool, "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULE_TESTS.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_dashboard_has_a_panel_for_each_sla_and_distinct_ids() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dash["panels"])
    titles = " | ".join(p["title"] for p in dash["panels"])
    for sla in ("tick → features", "inference", "tick → signal", "dynamic upgrade"):
        assert sla in titles
    exprs = " ".join(dashboard_exprs())
    for stage in ("features", "inference", "end_to_end"):
        assert f'stage="{stage}"' in exprs


def exposed_names(text: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        names |= {s.name for s in family.samples}
    return names


def wait_for_text(url: str, headers: dict[str, str], proc: subprocess.Popen[str], log: Path) -> str:
    deadline = time.monotonic() + 120  # a start on the shared 2-core machine can take a while
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{url} did not answer in 120 s: {log.read_text()[-3000:]}"
        try:
            r = httpx.get(url, headers=headers, timeout=5)
            if r.status_code == 200:
                return r.text
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_pg_url(pg_admin_url: str) -> Iterator[str]:
    """A database of this test alone: its engine signs checkpoints with a key of its own, which a
    database shared with other tests would then refuse to their engines (and theirs to it)."""
    import psycopg

    name = f"ts_obs_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as err:
        if os.environ.get("TS_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is not reachable ({err})", pytrace=False)
        pytest.skip(f"PostgreSQL is not reachable ({err})")
    base = pg_admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_every_metric_the_dashboard_and_rules_name_is_exposed_by_a_role(
    own_pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    pg_url = own_pg_url
    key = tmp_path / "ledger-key.pem"
    key.write_bytes(Ed25519Signer.generate().pem())
    key.chmod(0o600)
    metrics_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "TS_MODE": "server",
        "TS_DATABASE_URL": pg_url,
        "TS_REDIS_URL": redis_url,
        "TS_BUS_PREFIX": f"tsobs{uuid.uuid4().hex[:6]}",
        "TS_HOME": str(tmp_path),
        "TS_LEDGER_KEY_FILE": str(key),
        "TS_OPERATOR_TOKEN": "operator-token-for-the-test",
        "TS_METRICS_PORT": str(metrics_port),
        "TS_SPEED": "600",
    }
    exe = [sys.executable, "-m", "tradesignals.cli", "serve"]
    logs = [tmp_path / "workers.log", tmp_path / "api.log"]
    procs = [
        subprocess.Popen(
            [*exe, "--role", "engine", "--role", "ingest", "--feed", "sim"],
            env=env,
            stderr=logs[0].open("w"),
            stdout=subprocess.DEVNULL,
            text=True,
        ),
        subprocess.Popen(
            [*exe, "--role", "api", "--port", str(api_port)],
            env=env,
            stderr=logs[1].open("w"),
            stdout=subprocess.DEVNULL,
            text=True,
        ),
    ]
    try:
        workers = wait_for_text(f"http://127.0.0.1:{metrics_port}/metrics", {}, procs[0], logs[0])
        token = {"X-Operator-Token": "operator-token-for-the-test"}
        api = wait_for_text(f"http://127.0.0.1:{api_port}/metrics", token, procs[1], logs[1])
        assert httpx.get(f"http://127.0.0.1:{api_port}/metrics", timeout=5).status_code == 401
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    exposed = exposed_names(workers) | exposed_names(api)
    named = {m for e in dashboard_exprs() + rule_exprs() for m in METRIC.findall(e)}
    assert named, "no metric found in the dashboard and rules"
    assert sorted(named - exposed) == []
    # Each role exposes its own: the engine's stages and the ingest's counters on the workers'
    # port, the hub and webhooks on the API node.
    assert {"ts_engine_stage_seconds_bucket", "ts_ingest_published_total", "ts_bus_up"} <= exposed_names(
        workers
    )
    assert {"ts_ws_clients", "ts_ws_dropped_clients_total", "ts_webhook_events_total"} <= exposed_names(api)
    assert [p.returncode for p in procs] == [0, 0], [log.read_text()[-2000:] for log in logs]
