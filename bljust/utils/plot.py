"""Training curves as PNG files, drawn with matplotlib's Agg canvas (no display, no pyplot state).

save_curves(path, {"train": [(step, loss), ...], "valid": [...]}, title, xlabel, ylabel)
draws every series as a line (a lone point as a marker) with a legend; save_panels stacks
several such plots in one figure, each with an optional x range and dashed vertical lines
(the BL-JUST phase boundaries). Files are written atomically.
"""
from __future__ import annotations

import io
import math
from typing import Dict, List, Optional, Sequence, Tuple

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bljust.utils.fileio import atomic_write

Series = Dict[str, Sequence[Tuple[float, float]]]
WIDTH, PANEL_HEIGHT, DPI = 6.4, 4.0, 100  # 640 x 400 pixels per panel


def _draw(ax, series: Series, title: str, xlabel: str, ylabel: str,
          xlim: Optional[Tuple[float, float]] = None, vlines: Sequence[float] = ()) -> None:
    for name, pts in series.items():
        pts = [(float(x), float(y)) for x, y in pts if math.isfinite(float(x)) and math.isfinite(float(y))]
        if not pts:
            continue
        xs, ys = zip(*pts)
        ax.plot(xs, ys, label=name, marker="o" if len(pts) == 1 else None, linewidth=1.5)
    for x in vlines:
        ax.axvline(float(x), color="0.47", linestyle="--", linewidth=1)
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")


def _save(fig: Figure, path: str) -> None:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    with atomic_write(path, "wb", encoding=None) as f:
        f.write(buf.getvalue())


def save_curves(path: str, series: Dict[str, List[Tuple[float, float]]], title: str, xlabel: str,
                ylabel: str) -> None:
    """Writes a 640x400 PNG line plot of the series (name -> [(x, y), ...]); NaN/inf points are left out."""
    save_panels(path, [dict(series=series, title=title, xlabel=xlabel, ylabel=ylabel)])


def save_panels(path: str, panels: Sequence[Dict[str, object]]) -> None:
    """Several plots stacked in one PNG (640 x 400 each); a panel is a dict of series, title,
    xlabel, ylabel and optionally xlim=(lo, hi) and vlines=[x, ...]."""
    fig = Figure(figsize=(WIDTH, PANEL_HEIGHT * len(panels)), dpi=DPI, layout="tight")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, p in zip(axes, panels):
        _draw(ax, **p)  # type: ignore[arg-type]
    _save(fig, path)
