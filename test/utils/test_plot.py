"""save_curves writes a valid PNG that actually shows the curves."""
import math
import os
import struct
import zlib

import numpy as np

from bljust.utils.plot import save_curves


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        pos += 12 + n
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    w, h, depth, ctype, _, _, _ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, ctype) == (8, 2)
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + 3 * w)
    assert (rows[:, 0] == 0).all()  # filter type 0 on every row
    return rows[:, 1:].reshape(h, w, 3)


def test_png_valid_with_coloured_curves(tmp_path):
    path = str(tmp_path / "sub" / "loss.png")
    train = [(s, 5 * math.exp(-s / 300) + 0.1) for s in range(0, 1000, 10)]
    valid = [(s, 5 * math.exp(-s / 250) + 0.4) for s in range(0, 1001, 100)]
    save_curves(path, {"train": train, "valid": valid}, "Loss ctc", "step", "loss")
    img = read_png(path)
    assert img.shape == (400, 640, 3)
    assert not [f for f in os.listdir(tmp_path / "sub") if f != "loss.png"]  # no temp file left
    # both series colours are present with many pixels, and there is dark text/axis ink
    blue = ((img == (31, 119, 180)).all(-1)).sum()
    red = ((img == (214, 39, 40)).all(-1)).sum()
    dark = (img.sum(-1) == 0).sum()
    assert blue > 300 and red > 300 and dark > 500


def test_degenerate_series_do_not_crash(tmp_path):
    path = str(tmp_path / "p.png")
    save_curves(path, {"one": [(1, 2.0)], "empty": [], "nan": [(0, float("nan")), (1, 1e-7)]}, "t", "x", "y")
    assert read_png(path).shape == (400, 640, 3)


def test_panels_stack_with_a_shared_x_range_and_phase_markers(tmp_path):
    from bljust.utils.plot import save_panels

    path = str(tmp_path / "f_g.png")
    f = [(s, 300.0 - s / 10) for s in range(300, 800, 10)]  # f exists from the joint phase on
    g = [(s, 2.0 - s / 1000) for s in range(0, 501, 10)]    # g until the fine-tuning phase
    save_panels(path, [dict(series={"f": f}, title="f", xlabel="step", ylabel="loss", xlim=(0, 800),
                            vlines=[300, 500]),
                       dict(series={"g": g}, title="g", xlabel="step", ylabel="loss", xlim=(0, 800),
                            vlines=[300, 500])])
    img = read_png(path)
    assert img.shape == (800, 640, 3)
    top, bottom = img[:400], img[400:]
    ink_f = (top == (31, 119, 180)).all(-1)  # each panel draws its one series in the first colour
    ink_g = (bottom == (31, 119, 180)).all(-1)
    assert ink_f.sum() > 300 and ink_g.sum() > 300
    # on the shared axis f starts 3/8 of the way across and g ends 5/8 of the way across
    # (the legend swatch sits top right, in rows 44-47: skip them for g's last column)
    x0, x1 = 70, 640 - 20
    cols_f = np.nonzero(ink_f.any(0))[0]
    cols_g = np.nonzero(ink_g[50:].any(0))[0]
    assert abs(cols_f.min() - (x0 + 0.375 * (x1 - x0))) < 4
    assert abs(cols_g.max() - (x0 + 0.625 * (x1 - x0))) < 4
    grey = (img == (120, 120, 120)).all(-1)
    marker_cols = np.nonzero(grey[:400].sum(0) > 50)[0]
    assert any(abs(c - (x0 + 0.375 * (x1 - x0))) < 2 for c in marker_cols)
    assert any(abs(c - (x0 + 0.625 * (x1 - x0))) < 2 for c in marker_cols)
