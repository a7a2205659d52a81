"""save_curves / save_panels write PNG files that show the curves where they belong."""
import math
import os

import numpy as np
from matplotlib.image import imread

from bljust.utils.plot import save_curves, save_panels

BLUE, ORANGE, GREY = (31, 119, 180), (255, 127, 14), (120, 120, 120)  # first two line colours; phase markers


def read_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return (imread(path)[..., :3] * 255).round().astype(int)


def ink(img, colour, tol=40):
    return np.abs(img - np.array(colour)).sum(-1) < tol


def test_png_valid_with_coloured_curves(tmp_path):
    path = str(tmp_path / "sub" / "loss.png")
    train = [(s, 5 * math.exp(-s / 300) + 0.1) for s in range(0, 1000, 10)]
    valid = [(s, 5 * math.exp(-s / 250) + 0.4) for s in range(0, 1001, 100)]
    save_curves(path, {"train": train, "valid": valid}, "Loss ctc", "step", "loss")
    img = read_png(path)
    assert img.shape == (400, 640, 3)
    assert not [f for f in os.listdir(tmp_path / "sub") if f != "loss.png"]  # no temp file left
    # both series are drawn, in their own colours, and there is dark text/axis ink
    assert ink(img, BLUE).sum() > 300 and ink(img, ORANGE).sum() > 300
    assert (img.sum(-1) < 150).sum() > 500


def test_degenerate_series_do_not_crash(tmp_path):
    path = str(tmp_path / "p.png")
    save_curves(path, {"one": [(1, 2.0)], "empty": [], "nan": [(0, float("nan")), (1, 1e-7)]}, "t", "x", "y")
    assert read_png(path).shape == (400, 640, 3)


def test_panels_stack_with_a_shared_x_range_and_phase_markers(tmp_path):
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
    # the dashed markers: two grey columns in each panel, at the same place in both
    marks = [np.nonzero(ink(p, GREY, 20).sum(0) > 40)[0] for p in (top, bottom)]
    assert len(marks[0]) >= 2 and abs(marks[0].min() - marks[1].min()) <= 1 and abs(marks[0].max() - marks[1].max()) <= 1
    x300, x500 = marks[0].min(), marks[0].max()
    # f starts at the first marker (the joint phase) and g ends at the second (fine-tuning);
    # f falls from the top left, g ends at the bottom: the legends (top right) are out of the way
    f_cols = np.nonzero(ink(top, BLUE).any(0))[0]
    g_cols = np.nonzero(ink(bottom[200:], BLUE).any(0))[0]
    assert abs(f_cols.min() - x300) <= 3
    assert abs(g_cols.max() - x500) <= 3
    # and the shared x axis: 0..800 maps so that 300 and 500 sit 3/8 and 5/8 of the way
    x0 = x300 - (x500 - x300) * 300 / 200
    x1 = x300 + (x500 - x300) * 500 / 200
    assert np.nonzero(ink(top, BLUE).any(0))[0].max() <= x1 + 3 and g_cols.min() >= x0 - 3
