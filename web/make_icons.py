"""Writes the app icons (plain PNGs, no image library): a rising line on the brand colour.

Run once; the PNGs are committed under public/icons. `python3 make_icons.py`
"""

import struct
import zlib
from itertools import pairwise
from pathlib import Path

BG, FG = (15, 61, 62), (255, 255, 255)


def png(size: int, margin: float) -> bytes:
    rows = []
    pts = [(0.0, 0.75), (0.3, 0.55), (0.5, 0.65), (1.0, 0.25)]
    lo, hi = margin, 1 - margin
    w = 0.06 * (hi - lo)
    for yi in range(size):
        row = bytearray([0])
        y = yi / size
        for xi in range(size):
            x = xi / size
            colour = BG
            if lo <= x <= hi:
                u = (x - lo) / (hi - lo)
                for (x0, y0), (x1, y1) in pairwise(pts):
                    if x0 <= u <= x1:
                        v = y0 + (y1 - y0) * (u - x0) / (x1 - x0)
                        if abs(y - (lo + v * (hi - lo))) < w:
                            colour = FG
            row += bytes(colour)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")


out = Path(__file__).parent / "public" / "icons"
out.mkdir(parents=True, exist_ok=True)
(out / "icon-192.png").write_bytes(png(192, 0.15))
(out / "icon-512.png").write_bytes(png(512, 0.15))
(out / "icon-maskable-512.png").write_bytes(png(512, 0.25))
