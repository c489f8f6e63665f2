from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_gathers_each_scripts_json_and_reports_failures(tmp_path: Path) -> None:
    (tmp_path / "fast.py").write_text('import json\nprint(json.dumps({"ops_per_s": 42}, indent=2))\n')
    (tmp_path / "broken.py").write_text('raise SystemExit("no data here")\n')
    r = subprocess.run(
        [sys.executable, "-m", "tradesignals.cli", "bench", "--dir", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["fast"] == {"ops_per_s": 42}
    assert out["broken"] == {"error": "exit 1: no data here"}
    only = subprocess.run(
        [sys.executable, "-m", "tradesignals.cli", "bench", "--dir", str(tmp_path), "--only", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert only.returncode == 2 and "no benchmark scripts" in only.stderr
