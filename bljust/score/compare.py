"""The comparison table of a stage-9 run: one row per method or sweep point, with its
dev/test WER, training time, encoder passes and phase lengths.

Each experiment folder must hold train_summary.yaml (written by the bilevel trainer
when it finishes: method, encoder passes, wall time) and its scored decodings
(.../score_wer/result.txt).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import humanfriendly
import yaml

from bljust.score.results import collect


def summarise(exp: str, inference_tag: Optional[str] = None) -> Dict[str, Any]:
    """train_summary.yaml of `exp` with the WER of each scored set (of one decoding)."""
    path = os.path.join(exp, "train_summary.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: has training of {exp} finished?")
    with open(path, encoding="utf-8") as f:
        summ = yaml.safe_load(f) or {}
    wer: Dict[str, float] = {}
    for metrics in collect(exp).values():
        for name, row in metrics.get("wer", []):
            parts = name.split("/")
            if inference_tag and parts[0] != inference_tag:
                continue
            if parts[-1] in wer:
                raise ValueError(f"{exp}: several decodings of {parts[-1]}; pick one with --inference_tag")
            wer[parts[-1]] = float(row["Err"])
    return {"exp": exp, **summ, "wer": wer}


def render(rows: List[Dict[str, Any]], sets: Optional[List[str]] = None) -> str:
    """The Markdown table of summarise() rows (dev sets first)."""
    sets = sets or sorted({s for r in rows for s in r["wer"]}, key=lambda s: (not s.startswith("dev"), s))
    head = ["method", *[f"{s} WER" for s in sets], "training time", "passes (sup + unsup = total)", "steps",
            "N1 / N2 / N3 steps"]
    lines = ["# Comparison at equal encoder passes", "",
             "Every method trained on the same labeled/unlabeled split; a pass is one encoder "
             "forward/backward on one batch (labeled or unlabeled). Training time counts the "
             "training steps, not validation or checkpoints.", "",
             "|" + "|".join(head) + "|", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        ps, pu = int(r.get("passes_sup", 0)), int(r.get("passes_unsup", 0))
        label = str(r.get("label") or os.path.basename(r["exp"]))
        if r.get("variant"):
            label += f" [{r['variant']}]"
        ph = r.get("phases") or {}
        phases = (f"{ph.get('explore', 0)} / {ph.get('joint', 0)} / {ph.get('finetune', 0)}"
                  + (f" (K={ph.get('k', 1)})" if ph.get("joint") else "")) if ph else "-"
        cells = [label, *[f"{r['wer'][s]:.1f}" if s in r["wer"] else "-" for s in sets],
                 humanfriendly.format_timespan(float(r.get("wall_seconds", 0)), max_units=2),
                 f"{ps} + {pu} = {ps + pu}", str(r.get("steps", "-")), phases]
        lines.append("|" + "|".join(cells) + "|")
    return "\n".join(lines) + "\n"
