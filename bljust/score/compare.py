"""The comparison table of a stage-9 run: one row per method or sweep point, each trained
with one or more seeds, with mean ± standard deviation of its dev/test WER, training time,
encoder passes and phase lengths, and the significance of each reference row's test
hypotheses against every other row's, seed by seed (bljust.score.significance).

A row is a folder holding one run per seed (`seed<N>/`), or a run itself (one seed).
Each run must hold train_summary.yaml (written by the bilevel trainer when it finishes:
method, encoder passes, wall time) and its scored decodings (.../score_wer/result.txt,
hyp.trn, ref.trn).
"""
from __future__ import annotations

import os
import re
import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

import humanfriendly
import yaml

from bljust.score.results import collect
from bljust.score.significance import Significance, compare

SEED_DIR = re.compile(r"seed(\d+)")


def summarise(exp: str, inference_tag: Optional[str] = None) -> Dict[str, Any]:
    """train_summary.yaml of one run with the WER of each scored set (of one decoding)."""
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


def seed_runs(row_dir: str) -> List[Tuple[int, str]]:
    """(seed, run folder) of a row: its seed<N>/ folders in seed order, or the row itself."""
    if not os.path.isdir(row_dir):
        raise FileNotFoundError(f"{row_dir}: no such row folder")
    runs = sorted((int(m.group(1)), os.path.join(row_dir, d)) for d in os.listdir(row_dir)
                  if (m := SEED_DIR.fullmatch(d)) and os.path.isdir(os.path.join(row_dir, d)))
    if runs:
        return runs
    conf = os.path.join(row_dir, "config.yaml")  # one run: its seed is in its resolved config
    with open(conf, encoding="utf-8") if os.path.isfile(conf) else open(os.devnull) as f:
        return [(int((yaml.safe_load(f) or {}).get("seed", 0)), row_dir)]


def summarise_row(row_dir: str, inference_tag: Optional[str] = None, first_seed_only: bool = False) -> Dict[str, Any]:
    """A row over its seeds: the first run's settings, every run's WER and the mean training time.
    first_seed_only: the first seed's run alone (a sweep point is chosen on it, while the
    chosen point's other seeds may still be training)."""
    runs = [(seed, summarise(run, inference_tag)) for seed, run in seed_runs(row_dir)[:1 if first_seed_only else None]]
    first = runs[0][1]
    sets = sorted({s for _, r in runs for s in r["wer"]})
    for seed, r in runs:
        missing = [s for s in sets if s not in r["wer"]]
        if missing:
            raise ValueError(f"{r['exp']}: no scored decoding of {', '.join(missing)} (the row's other seeds have one)")
    return {**{k: v for k, v in first.items() if k not in ("exp", "wer", "wall_seconds")}, "exp": row_dir,
            "runs": dict(runs), "wer": {s: [r["wer"][s] for _, r in runs] for s in sets},
            "wall_seconds": statistics.fmean(float(r.get("wall_seconds", 0)) for _, r in runs)}


def mean_std(xs: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def per_seed_tsv(row: Dict[str, Any]) -> str:
    """The per-seed figures of a row (written to <row>/wer_per_seed.tsv)."""
    sets = list(row["wer"])
    lines = ["\t".join(["seed", *[f"{s}_wer" for s in sets], "training_seconds", "passes_sup", "passes_unsup", "run"])]
    for seed, r in row["runs"].items():
        lines.append("\t".join([str(seed), *[f"{r['wer'][s]:.2f}" for s in sets], f"{float(r.get('wall_seconds', 0)):.1f}",
                                str(r.get("passes_sup", 0)), str(r.get("passes_unsup", 0)), os.path.basename(r["exp"])]))
    return "\n".join(lines) + "\n"


def scored_trn(run: str, test_set: str, inference_tag: Optional[str] = None) -> Tuple[str, str]:
    """(ref.trn, hyp.trn) of the word scoring of `test_set` in one run."""
    tags = [inference_tag] if inference_tag else sorted(d for d in os.listdir(run) if d.startswith("decode"))
    found = [os.path.join(run, t, test_set, "score_wer") for t in tags
             if os.path.isfile(os.path.join(run, t, test_set, "score_wer", "hyp.trn"))]
    if not found:
        raise FileNotFoundError(f"{run}: no scored decoding of {test_set} (<decode>/{test_set}/score_wer/hyp.trn)")
    if len(found) > 1:
        raise ValueError(f"{run}: several decodings of {test_set}; pick one with --inference_tag")
    return os.path.join(found[0], "ref.trn"), os.path.join(found[0], "hyp.trn")


def significance(ref_row: Dict[str, Any], row: Dict[str, Any], test_set: str,
                 inference_tag: Optional[str] = None) -> Dict[int, Significance]:
    """sc_stats of the reference row's hypotheses (system A) against the row's (B), seed by
    seed over the seeds both rows have; the reports are kept in <row>/<seed>/significance/."""
    out: Dict[int, Significance] = {}
    for seed in [s for s in ref_row["runs"] if s in row["runs"]]:
        ref_a, hyp_a = scored_trn(ref_row["runs"][seed]["exp"], test_set, inference_tag)
        ref_b, hyp_b = scored_trn(row["runs"][seed]["exp"], test_set, inference_tag)
        with open(ref_a, "rb") as fa, open(ref_b, "rb") as fb:
            if fa.read() != fb.read():
                raise ValueError(f"{ref_a} and {ref_b} differ: the two rows were not scored on the same references")
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(os.path.normpath(ref_row["exp"])))
        work = os.path.join(row["runs"][seed]["exp"], "significance", f"{test_set}_vs_{name}")
        out[seed] = compare(ref_a, hyp_a, hyp_b, "reference", "row", work_dir=work)
    return out


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def label_of(row: Dict[str, Any]) -> str:
    label = str(row.get("label") or os.path.basename(os.path.normpath(row["exp"])))
    return label + (f" [{row['variant']}]" if row.get("variant") else "") + row.get("suffix", "")


def _wer(xs: Sequence[float]) -> str:
    m, s = mean_std(xs)
    return f"{m:.1f} ± {s:.1f}" if len(xs) > 1 else f"{m:.1f}"


def _verdict(ref: Dict[str, Any], row: Dict[str, Any], test_set: str, sig: Dict[int, Significance]) -> str:
    a, b = mean_std(ref["wer"][test_set])[0], mean_std(row["wer"][test_set])[0]
    rel = (b - a) / b * 100 if b else 0.0
    head = (f"- {label_of(ref)} against {label_of(row)} on {test_set}: {_wer(ref['wer'][test_set])} vs "
            f"{_wer(row['wer'][test_set])} WER ({abs(rel):.1f}% relative {'lower' if rel >= 0 else 'higher'}); ")
    if not sig:
        return head + "no seed in common, not tested."
    yes = [s for s, x in sig.items() if x.significant()]
    no = [f"seed {s} (MAPSSWE p {_p(x.mapsswe_p)}, sign p {_p(x.sign_p)})" for s, x in sig.items()
          if not x.significant()]
    if not no:
        return head + f"significant at p < 0.05 in both tests for every seed ({len(yes)} of {len(sig)})."
    return head + f"significant for {len(yes)} of {len(sig)} seeds; not significant for " + ", ".join(no) + "."


def _gap_line(ref: str, base: str, s: str, b: float, t: float, a: float) -> str:
    """One line on the share of the gap from the baseline's WER b to the topline's t that the
    reference's a closes; a topline no better than the baseline leaves no gap, and says so."""
    if t >= b:
        return (f"- {ref} on {s}: undefined: the topline ({t:.1f}) is not better than {base} ({b:.1f}) at "
                f"this budget, so there is no gap to close (the reference: {a:.1f})")
    line = f"- {ref} on {s}: {(b - a) / (b - t) * 100:.0f}% of the gap from {base} ({b:.1f}) to the topline ({t:.1f})"
    if a > b:
        line += f"; below zero: the reference ({a:.1f}) is worse than {base}, it closes none of the gap"
    if a < t:  # past the oracle: the topline is no upper bound at this budget
        line += (f"; more than all of it: the reference ({a:.1f}) beats the topline, which is no upper bound "
                 f"at this budget (not converged: train it longer)")
    return line


def render(rows: List[Dict[str, Any]], sets: Optional[List[str]] = None,
           sig: Optional[Dict[Tuple[str, str, str], Dict[int, Significance]]] = None,
           sweeps: Optional[List[Dict[str, Any]]] = None, title: str = "Comparison at equal encoder passes",
           topline: Optional[str] = None, tuned: Optional[List[str]] = None) -> str:
    """The Markdown table of summarise_row() rows (dev sets first).

    sig: (reference row folder, row folder, set) -> {seed: Significance}: one column per
    (reference, set), the words under the table say which differences are significant.
    sweeps: [{"points": [rows], "chosen": row folder}] tabulated below, by dev WER.
    topline: the row folder of the topline, for the share of the gap each reference closes.
    tuned: row folders trained with a sweep's chosen settings where the sweep itself is not
    tabulated (a budget curve): they are the baselines of the gap, like a sweep's chosen row."""
    sig = sig or {}
    sets = sets or sorted({s for r in rows for s in r["wer"]}, key=lambda s: (not s.startswith("dev"), s))
    by_exp = {r["exp"]: r for r in rows}
    pairs = sorted({(ref, s) for ref, _, s in sig}, key=lambda x: ([r["exp"] for r in rows].index(x[0]), x[1]))
    head = ["method", "seeds", *[f"{s} WER" for s in sets], "training time", "passes (sup + unsup = total)", "steps",
            "N1 / N2 / N3 steps", *[f"p vs {label_of(by_exp[ref])} on {s}: MAPSSWE / sign, per seed" for ref, s in pairs]]
    lines = [f"# {title}", "",
             "Every method trained on the same labeled/unlabeled split; a pass is one encoder "
             "forward/backward on one batch (labeled or unlabeled). WER is the mean ± sample standard "
             "deviation over the seeds; training time is the mean over the seeds and counts the "
             "training steps, not validation or checkpoints. p-values: NIST sc_stats, matched-pair "
             "sentence-segment word error (MAPSSWE) and sign test over speakers, of the reference "
             "row's hypotheses against the row's, for the same seed.", "",
             "|" + "|".join(head) + "|", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        ps, pu = int(r.get("passes_sup", 0)), int(r.get("passes_unsup", 0))
        ph = r.get("phases") or {}
        phases = (f"{ph.get('explore', 0)} / {ph.get('joint', 0)} / {ph.get('finetune', 0)}"
                  + (f" (K={ph.get('k', 1)})" if ph.get("joint") else "")) if ph else "-"
        cells = [label_of(r), str(len(r.get("runs") or [0])),
                 *[_wer(r["wer"][s]) if s in r["wer"] else "-" for s in sets],
                 humanfriendly.format_timespan(float(r.get("wall_seconds", 0)), max_units=2),
                 f"{ps} + {pu} = {ps + pu}", str(r.get("steps", "-")), phases]
        for ref, s in pairs:
            res = sig.get((ref, r["exp"], s))
            cells.append("reference" if ref == r["exp"] else "-" if not res else
                         "; ".join(f"{_p(x.mapsswe_p)} / {_p(x.sign_p)}" for x in res.values()))
        lines.append("|" + "|".join(cells) + "|")
    if sig:
        lines += ["", "Significance (both tests at p < 0.05, seed by seed):", ""]
        lines += [_verdict(by_exp[ref], by_exp[row], s, res) for (ref, row, s), res in sig.items()]
    if topline and topline in by_exp:
        top = by_exp[topline]
        lines += ["", f"Share of the gap to the topline ({label_of(top)}) that each reference closes:", ""]
        bases = ([sw["chosen"] for sw in sweeps or []] or [t for t in tuned or [] if t in by_exp]
                 or [rows[0]["exp"]])
        for ref in dict.fromkeys(ref for ref, _ in pairs):
            for base in bases:
                for s in sets:
                    if s.startswith("dev") or s not in top["wer"]:
                        continue
                    b, t, a = (mean_std(by_exp[x]["wer"][s])[0] for x in (base, topline, ref))
                    lines.append(_gap_line(label_of(by_exp[ref]), label_of(by_exp[base]), s, b, t, a))
    for sw in sweeps or []:
        pts = sw["points"]
        dev = next((s for s in sets if s.startswith("dev")), sets[0])
        lines += ["", f"Sweep for {label_of(by_exp.get(sw['chosen'], pts[0]))}: {len(pts)} points, one seed each, "
                      f"chosen by {dev} WER:", "", f"|point|{dev} WER|chosen|", "|---|---:|---|"]
        for p in pts:
            lines.append(f"|{label_of({**p, 'suffix': ''})}|{p['wer'][dev][0]:.1f}|"
                         f"{'yes' if p['exp'] == sw['chosen'] else ''}|")
    return "\n".join(lines) + "\n"


def best_by(rows: List[Dict[str, Any]], set_name: str, first_seed: bool = False) -> Dict[str, Any]:
    """The row with the lowest mean WER on `set_name` (the first of equals); first_seed: by
    its first seed's WER alone (a sweep, whose chosen point later gets more seeds)."""
    missing = [r["exp"] for r in rows if set_name not in r["wer"]]
    if missing:
        raise ValueError(f"no {set_name} WER for {', '.join(missing)}")
    return min(rows, key=lambda r: (r["wer"][set_name][0] if first_seed else mean_std(r["wer"][set_name])[0],
                                    rows.index(r)))
