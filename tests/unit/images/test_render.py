"""The signal image is a function of the signal and its bars: same inputs, same bytes, anywhere."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.images.render import RECENT_BARS, bars_frame, render_png, title_lines

T = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def signal() -> Signal:
    return Signal(
        id="0123456789abcdef012345",
        symbol="SIM007",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=101.5,
        stop=98.0,
        targets=(105.0, 108.5, 112.0),
        confidence=0.523,
        created_at=T,
        expires_at=T + timedelta(days=5),
        model_version="m1",
        decided_at=T,
    )


def bars(n: int = 80, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = np.array([int((T - timedelta(days=n - i)).timestamp() * 1e9) for i in range(n)], dtype=np.int64)
    close = 100 + np.cumsum(rng.normal(size=n))
    open_ = close + rng.normal(size=n) * 0.5
    return pd.DataFrame(
        {
            "ts": ts,
            "symbol": "SIM007",
            "open": open_,
            "high": np.maximum(open_, close) + 0.5,
            "low": np.minimum(open_, close) - 0.5,
            "close": close,
            "volume": 1000.0,
        }
    )


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc
        out.append((kind, body))
        pos += 12 + length
    return out


def test_same_signal_same_bytes_and_a_clean_png() -> None:
    a = render_png(signal(), bars())
    b = render_png(signal(), bars())
    assert a == b
    chunks = png_chunks(a)
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert (chunks[0][0], width, height) == (b"IHDR", 800, 450)
    # no text chunk at all: neither matplotlib's version ("Software") nor a date
    assert not {k for k, _ in chunks} & {b"tEXt", b"iTXt", b"zTXt", b"tIME"}


def test_the_image_depends_on_the_plan_and_the_bars() -> None:
    base = render_png(signal(), bars())
    assert render_png(replace(signal(), stop=97.0), bars()) != base
    assert render_png(replace(signal(), confidence=0.524), bars()) != base
    assert render_png(signal(), bars(seed=4)) != base
    # only the last RECENT_BARS are drawn: older bars do not change the picture
    full = bars(n=RECENT_BARS + 40)
    assert render_png(signal(), full) == render_png(signal(), full.tail(RECENT_BARS + 5))
    assert render_png(signal(), full) != render_png(signal(), full.iloc[:-1])


def test_same_bytes_in_another_process_with_another_matplotlibrc(tmp_path: Path) -> None:
    """A fresh interpreter whose matplotlibrc asks for another font, size and dpi draws the same bytes:
    the renderer fixes every setting it depends on."""
    ours = render_png(signal(), bars())
    config = tmp_path / "mpl"
    config.mkdir()
    (config / "matplotlibrc").write_text(
        "font.family: serif\nfont.size: 14\nfigure.dpi: 72\nsavefig.dpi: 50\n"
    )
    out = tmp_path / "other.png"
    script = (
        "import sys; sys.path[:0] = [" + repr(str(Path(__file__).parent)) + "]\n"
        "from test_render import signal, bars\n"
        "from tradesignals.images.render import render_png\n"
        f"open({str(out)!r}, 'wb').write(render_png(signal(), bars()))\n"
    )
    env = {"MPLCONFIGDIR": str(config), "PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH": "0", "TZ": "Asia/Tokyo"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=90)
    assert out.read_bytes() == ours


def test_without_bars_the_plan_is_drawn_alone() -> None:
    empty = bars().iloc[0:0]
    png = render_png(signal(), empty)
    assert png_chunks(png)[0][0] == b"IHDR"
    assert png != render_png(signal(), bars())


def test_the_words_on_the_image() -> None:
    head, sub = title_lines(signal())
    assert head.startswith("SIM007") and "LONG" in head and "swing" in head
    assert "confidence 52.3%" in sub and "expires 2026-12-06 15:00 UTC" in sub


def test_bars_frame_keeps_the_last_bars_in_order_on_a_utc_index() -> None:
    frame = bars(n=100).sample(frac=1.0, random_state=1)
    out = bars_frame(frame)
    assert len(out) == RECENT_BARS and out.index.is_monotonic_increasing
    assert str(out.index.tz) == "UTC" and list(out.columns) == ["Open", "High", "Low", "Close", "Volume"]
