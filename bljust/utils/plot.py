"""Loss curves as PNG without matplotlib: a numpy raster, a 5x7 bitmap font, zlib.

save_curves(path, {"train": [(step, loss), ...], "valid": [...]}, title, xlabel, ylabel)
draws every series as a line in its own colour, with axes, tick labels and a legend.
"""
from __future__ import annotations

import math
import struct
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bljust.utils.fileio import atomic_write

W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 36, 50
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]

# 5x7 glyphs, one string of 7 rows x 5 columns per character; lower case is drawn as upper.
_GLYPHS = {
    "0": "01110100011001110101110011000101110", "1": "00100011000010000100001000010001110",
    "2": "01110100010000100010001000100011111", "3": "11111000100010000010000011000101110",
    "4": "00010001100101010010111110001000010", "5": "11111100001111000001000011000101110",
    "6": "00110010001000011110100011000101110", "7": "11111000010001000100010000100001000",
    "8": "01110100011000101110100011000101110", "9": "01110100011000101111000010001001100",
    "A": "01110100011000111111100011000110001", "B": "11110100011000111110100011000111110",
    "C": "01110100011000010000100001000101110", "D": "11100100101000110001100011001011100",
    "E": "11111100001000011110100001000011111", "F": "11111100001000011110100001000010000",
    "G": "01110100011000010111100011000101111", "H": "10001100011000111111100011000110001",
    "I": "01110001000010000100001000010001110", "J": "00111000100001000010000101001001100",
    "K": "10001100101010011000101001001010001", "L": "10000100001000010000100001000011111",
    "M": "10001110111010110101100011000110001", "N": "10001100011100110101100111000110001",
    "O": "01110100011000110001100011000101110", "P": "11110100011000111110100001000010000",
    "Q": "01110100011000110001101011001001101", "R": "11110100011000111110101001001010001",
    "S": "01111100001000001110000010000111110", "T": "11111001000010000100001000010000100",
    "U": "10001100011000110001100011000101110", "V": "10001100011000110001100010101000100",
    "W": "10001100011000110101101011010101010", "X": "10001100010101000100010101000110001",
    "Y": "10001100011000101010001000010000100", "Z": "11111000010001000100010001000011111",
    ".": "00000000000000000000000000110001100", "-": "00000000000000011111000000000000000",
    "+": "00000001000010011111001000010000000", "_": "00000000000000000000000000000011111",
    ":": "00000011000110000000011000110000000", "/": "00000000010001000100010001000000000",
    "(": "00010001000100001000010000010000010", ")": "01000001000001000010000100010001000",
    ",": "00000000000000000000001100010001000", "=": "00000000001111100000111110000000000",
    "%": "11000110010001000100010001001100011", "*": "00000001001010101110101010010000000",
    " ": "0" * 35,
}
_FONT = {c: np.array([int(b) for b in g], dtype=bool).reshape(7, 5) for c, g in _GLYPHS.items()}
_UNKNOWN = np.ones((7, 5), dtype=bool)


def _text(img: np.ndarray, x: int, y: int, s: str, colour=(0, 0, 0), scale: int = 1,
          vertical: bool = False) -> None:
    """Draws s with its top-left corner at (x, y); vertical text reads bottom-up."""
    for i, ch in enumerate(s):
        g = _FONT.get(ch.upper(), _UNKNOWN)
        if scale > 1:
            g = g.repeat(scale, 0).repeat(scale, 1)
        if vertical:
            g = np.rot90(g)
            gx, gy = x, y - (i + 1) * 6 * scale
        else:
            gx, gy = x + i * 6 * scale, y
        h, w = g.shape
        x0, y0 = max(gx, 0), max(gy, 0)
        x1, y1 = min(gx + w, img.shape[1]), min(gy + h, img.shape[0])
        if x1 > x0 and y1 > y0:
            img[y0:y1, x0:x1][g[y0 - gy : y1 - gy, x0 - gx : x1 - gx]] = colour


def _text_width(s: str, scale: int = 1) -> int:
    return len(s) * 6 * scale - scale


def _line(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour, width: int = 2) -> None:
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.rint(np.linspace(x0, x1, n)).astype(int)
    ys = np.rint(np.linspace(y0, y1, n)).astype(int)
    for dx in range(width):
        for dy in range(width):
            xx, yy = xs + dx - width // 2, ys + dy - width // 2
            ok = (xx >= 0) & (xx < img.shape[1]) & (yy >= 0) & (yy < img.shape[0])
            img[yy[ok], xx[ok]] = colour


def _ticks(lo: float, hi: float, n: int = 6) -> List[float]:
    """About n 'nice' tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    span = hi - lo
    raw = span / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.1e}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")
    return f"{v:.4g}"


def _png(img: np.ndarray) -> bytes:
    h, w, _ = img.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def render_curves(series: Dict[str, Sequence[Tuple[float, float]]], title: str, xlabel: str,
                  ylabel: str, xlim: Optional[Tuple[float, float]] = None,
                  vlines: Sequence[float] = ()) -> np.ndarray:
    """The plot as an (H, W, 3) uint8 array; `xlim` fixes the x range, `vlines` draws
    dashed vertical markers (e.g. where a training phase begins)."""
    img = np.full((H, W, 3), 255, dtype=np.uint8)
    pts = {k: [(float(x), float(y)) for x, y in v if math.isfinite(float(x)) and math.isfinite(float(y))]
           for k, v in series.items()}
    if xlim is not None:
        pts = {k: [q for q in v if xlim[0] <= q[0] <= xlim[1]] for k, v in pts.items()}
    allx = [p[0] for v in pts.values() for p in v]
    ally = [p[1] for v in pts.values() for p in v]
    x_lo, x_hi = (min(allx), max(allx)) if allx else (0.0, 1.0)
    if xlim is not None:
        x_lo, x_hi = float(xlim[0]), float(xlim[1])
    y_lo, y_hi = (min(ally), max(ally)) if ally else (0.0, 1.0)
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    if y_hi <= y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    pad = 0.05 * (y_hi - y_lo)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    px0, px1, py0, py1 = LEFT, W - RIGHT, TOP, H - BOTTOM

    def sx(x: float) -> float:
        return px0 + (x - x_lo) / (x_hi - x_lo) * (px1 - px0)

    def sy(y: float) -> float:
        return py1 - (y - y_lo) / (y_hi - y_lo) * (py1 - py0)

    for t in _ticks(x_lo, x_hi):
        x = int(round(sx(t)))
        img[py0:py1, x] = (230, 230, 230)
        img[py1 : py1 + 4, x] = 0
        lab = _fmt(t)
        _text(img, x - _text_width(lab) // 2, py1 + 7, lab)
    for t in _ticks(y_lo, y_hi):
        y = int(round(sy(t)))
        img[y, px0:px1] = (230, 230, 230)
        img[y, px0 - 4 : px0] = 0
        lab = _fmt(t)
        _text(img, px0 - 7 - _text_width(lab), y - 3, lab)
    for v in vlines:
        if x_lo < v < x_hi:
            x = int(round(sx(v)))
            for y in range(py0, py1, 8):
                img[y : min(y + 4, py1), x] = (120, 120, 120)
    img[py0:py1 + 1, px0] = 0
    img[py1, px0:px1 + 1] = 0
    _text(img, (W - _text_width(title, 2)) // 2, 8, title, scale=2)
    _text(img, (px0 + px1 - _text_width(xlabel)) // 2, H - 16, xlabel)
    _text(img, 6, (py0 + py1 + _text_width(ylabel)) // 2, ylabel, vertical=True)

    for i, (name, p) in enumerate(pts.items()):
        c = COLOURS[i % len(COLOURS)]
        p = sorted(p)
        for (xa, ya), (xb, yb) in zip(p, p[1:]):
            _line(img, sx(xa), sy(ya), sx(xb), sy(yb), c)
        if len(p) == 1:
            _line(img, sx(p[0][0]) - 2, sy(p[0][1]), sx(p[0][0]) + 2, sy(p[0][1]), c, width=5)
        # Legend, top right, one row per series.
        lw = max((_text_width(n) for n in pts), default=0)
        lx, ly = px1 - lw - 34, py0 + 6 + 12 * i
        img[ly + 2 : ly + 5, lx : lx + 20] = c
        _text(img, lx + 26, ly, name)
    return img


def save_curves(path: str, series: Dict[str, List[Tuple[float, float]]], title: str, xlabel: str,
                ylabel: str) -> None:
    """Writes a 640x400 PNG line plot of the series (name -> [(x, y), ...]) atomically."""
    data = _png(render_curves(series, title, xlabel, ylabel))
    with atomic_write(path, "wb") as f:
        f.write(data)


def save_panels(path: str, panels: Sequence[Dict[str, object]]) -> None:
    """Several plots stacked in one PNG; each panel is a dict of render_curves' arguments."""
    data = _png(np.concatenate([render_curves(**p) for p in panels], axis=0))  # type: ignore[arg-type]
    with atomic_write(path, "wb") as f:
        f.write(data)
