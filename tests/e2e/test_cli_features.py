from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

CONTRACT = ["timestamp", "symbol", "sma_20", "ema_20", "rsi_14", "macd", "macd_signal", "macd_hist",
            "bb_upper", "bb_middle", "bb_lower", "atr_14", "adx_14", "obv", "ret_1", "ret_5", "ret_20"]  # fmt: skip


def test_features_writes_one_row_per_symbol_and_bar_with_the_contract_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    days = pd.bdate_range("2023-01-02", periods=120)
    frames = []
    for sym in ("AAA", "BBB"):
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
        frames.append(pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "ticker": sym, "open": close,
                                    "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1e5}))  # fmt: skip
    src = tmp_path / "bars.csv"
    pd.concat(frames).to_csv(src, index=False)
    out = tmp_path / "f.parquet"
    r = subprocess.run(
        [sys.executable, "-m", "tradesignals.cli", "features", str(src), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    table = pd.read_parquet(out)
    assert list(table.columns[: len(CONTRACT)]) == CONTRACT
    assert len(table) == 240 and table.groupby("symbol").size().to_dict() == {"AAA": 120, "BBB": 120}
    aaa = table[table["symbol"] == "AAA"].sort_values("timestamp")
    expected_sma = pd.Series(frames[0]["close"].to_numpy()).rolling(20).mean().to_numpy()
    np.testing.assert_allclose(aaa["sma_20"].to_numpy()[19:], expected_sma[19:], rtol=1e-12)
    assert aaa["sma_20"].iloc[:19].isna().all()
