"""Tables of a LASER study (egs/mini_synth/ssft1/laser_study.sh): the SUPERB PR probe on
the upstream along pre-training and along LASER fine-tuning, with several downstream seeds.

    python -m bljust.bin.laser_study --expdir exp/laser_study [--pretrain_dir DIR --pretrain_last N] [--out F]

It reads, under --expdir:
  superb_<point>_s<seed>_pr/   a PR probe: checkpoint.pth (validation rounds, layer weights, wall
                               time) and decode_*/<set>/score_wer/result.txt (sclite: the PER);
                               <point> is pre<update>, laser0 (the upstream LASER starts from)
                               or <setting>_u<update>
  superb_<point>_s<seed>_asr/  an ASR probe, the same files (the WER)
  laser_<setting>/             a LASER run: checkpoint.pth (diagnostics, wall time), config.yaml
and writes markdown: the pre-training cost and PR, before/after LASER with mean ± std over
seeds, layer weights and whether each downstream converged (its last validation PERs within
--flat points of each other and of its best), the PR curve over fine-tuning with the LASER
diagnostics logged at that update, and the ASR probe's WER before and after where it ran.
"""
from __future__ import annotations

import argparse
import glob
import logging
import math
import os
import re
import sys
from typing import Any, Dict, List, Optional, Tuple

import torch

from bljust.score.sclite import parse_result
from bljust.train.checkpoint import load_checkpoint
from bljust.train.config import yaml_load
from bljust.utils import cli
from bljust.utils.fileio import atomic_write
from bljust.utils.log import setup_logging

PROBE = re.compile(r"superb_(.+)_s(\d+)_(pr|asr)$")
DIAGS = ("sdtw_div", "idm", "cos_near", "cos_far", "var", "erank", "diag_dev_id", "diag_dev_pair")


def mean_std(xs: List[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value)."""
    m = sum(xs) / len(xs)
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0)


def read_probe(d: str, flat: float) -> Dict[str, Any]:
    """One probe folder: test PERs by set, validation PERs, layer weights, convergence, wall time."""
    ck, _ = load_checkpoint(d, required=("loop", "method"))
    rounds = [(int(h["step"]), float(h["error_rate"])) for h in ck["loop"]["history"] if "error_rate" in h]
    if not rounds:
        raise ValueError(f"{d}: the checkpoint has no validation round")
    w = ck["method"]["model"]["featurizer.weights"]
    pers = {}
    for res in sorted(glob.glob(os.path.join(d, "decode_*", "*", "score_wer", "result.txt"))):
        pers[res.split(os.sep)[-3]] = float(parse_result(res)["Err"])
    ver = [v for _, v in rounds]
    converged = len(ver) >= 2 and abs(ver[-1] - ver[-2]) <= flat and ver[-1] - min(ver) <= flat
    return {"dir": d, "per": pers, "valid": rounds, "best_valid": min(ver), "converged": converged,
            "weights": torch.softmax(w.float(), 0).tolist(), "steps": int(ck["loop"]["step"]),
            "wall": float(ck["loop"].get("wall", 0.0))}


def read_probes(expdir: str, flat: float, task: str = "pr") -> Dict[str, Dict[int, Dict[str, Any]]]:
    """{point: {seed: probe}} of every finished probe of `task` (pr or asr) under expdir."""
    out: Dict[str, Dict[int, Dict[str, Any]]] = {}
    for d in sorted(glob.glob(os.path.join(expdir, f"superb_*_s*_{task}"))):
        m = PROBE.search(os.path.basename(d))
        if m and m.group(3) == task and os.path.isfile(os.path.join(d, "checkpoint.pth")):
            out.setdefault(m.group(1), {})[int(m.group(2))] = read_probe(d, flat)
    return out


def read_laser(d: str) -> Dict[str, Any]:
    ck, _ = load_checkpoint(d, required=("loop", "method"))
    with open(os.path.join(d, "config.yaml"), encoding="utf-8") as f:
        conf = yaml_load(f)
    return {"diag": {int(r["step"]): r for r in ck["method"].get("diag", [])}, "wall": float(ck["loop"]["wall"]),
            "steps": int(ck["loop"]["step"]), "lr": conf["optim"]["lr"], "train_last": conf["upstream"]["train_last"],
            "max_updates": int(conf["trainer"]["max_updates"])}


def _f(x: Optional[float], nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _pm(xs: List[float]) -> str:
    m, s = mean_std(xs)
    return f"{m:.1f} ± {s:.1f}" if len(xs) > 1 else f"{m:.1f}"


def _test_set(probes: Dict[str, Dict[int, Dict[str, Any]]]) -> str:
    sets = sorted({x for p in probes.values() for r in p.values() for x in r["per"]})
    return "test" if "test" in sets else (sets[0] if sets else "test")


def _minutes(s: float) -> str:
    return f"{s / 60:.1f} min"


def before_after(probes: Dict[str, Dict[int, Dict[str, Any]]], lasers: Dict[str, Dict[str, Any]], x: str,
                 metric: str, flat: float) -> List[str]:
    """The before/after table of one probe task: each upstream's error rate per seed, mean ± std,
    relative change, best dev error, layer weights and convergence."""
    finals = [("laser0", "before LASER")] + [(f"{s}_u{v['max_updates']}", f"{s} (lr {v['lr']:g}, last {v['train_last']} "
                                              f"layers, {v['max_updates']} updates)") for s, v in lasers.items()]
    base = [r["per"][x] for r in probes.get("laser0", {}).values() if x in r["per"]]
    L = [f"| upstream | seeds | {metric} {x} per seed (%) | {metric} {x} mean ± std | relative to before "
         f"| best dev error mean ± std | layer weights (mean; input, layer 1..) | dev curve flat at the end "
         f"| p against before per seed (MAPSSWE / sign) |", "|---|---|---|---|---|---|---|---|---|"]
    for p, name in finals:
        runs = probes.get(p, {})
        per = [runs[s]["per"][x] for s in sorted(runs) if x in runs[s]["per"]]
        if not per:
            continue
        rel = f"{100 * (mean_std(base)[0] - mean_std(per)[0]) / mean_std(base)[0]:+.1f}%" if base and p != "laser0" else "-"
        w = [sum(c) / len(runs) for c in zip(*(r["weights"] for r in runs.values()))]
        flat_n = sum(r["converged"] for r in runs.values())
        sig = "-" if p == "laser0" else " ; ".join(_significance(probes.get("laser0", {}).get(s), runs[s], x)
                                                   for s in sorted(runs))
        L.append(f"| {name} | {','.join(map(str, sorted(runs)))} | {' / '.join(f'{v:.1f}' for v in per)} | {_pm(per)} "
                 f"| {rel} | {_pm([r['best_valid'] for r in runs.values()])} | {' '.join(f'{v:.2f}' for v in w)} "
                 f"| {flat_n}/{len(runs)} | {sig} |")
    return L + ["", "Relative: (before − after) / before, positive = better. Flat: the last two validation error rates "
                f"within {flat:g} points of each other and of the best. p: SCTK sc_stats on the {x} hypotheses of "
                "the same seed's downstream before and after (matched-pair sentence-segment error, MAPSSWE, and "
                "the sign test over speakers); * where both are below 0.05.", ""]


def _significance(before: Optional[Dict[str, Any]], after: Dict[str, Any], x: str) -> str:
    """'p_mapsswe / p_sign' of one seed's hypotheses after against before; '-' without them or sc_stats."""
    if not before:
        return "-"
    from bljust.score.compare import scored_trn
    from bljust.score.significance import compare

    try:
        ref, hyp_before = scored_trn(before["dir"], x)
        sg = compare(ref, hyp_before, scored_trn(after["dir"], x)[1], "before", "after")
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        logging.warning("no significance test: %s", e)
        return "-"
    return f"{sg.mapsswe_p:.3g} / {sg.sign_p:.3g}" + ("*" if sg.significant() else "")


def summarize(expdir: str, pretrain_dir: Optional[str] = None, pretrain_last: Optional[int] = None,
              flat: float = 1.0) -> str:
    probes = read_probes(expdir, flat)
    if not probes:
        raise FileNotFoundError(f"{expdir}: no finished probe (superb_<point>_s<seed>_pr/checkpoint.pth)")
    x = _test_set(probes)
    seed1 = min(s for p in probes.values() for s in p)
    L: List[str] = ["# LASER study: SUPERB PR probe along pre-training and LASER fine-tuning", ""]

    # ---- pre-training
    if pretrain_dir and os.path.isfile(os.path.join(pretrain_dir, "checkpoint.pth")):
        ck, _ = load_checkpoint(pretrain_dir, required=("loop",))
        st = ck["loop"]
        acc = [r["masked_acc"] for r in st["log"] if "masked_acc" in r]
        L += ["## Upstream pre-training", "",
              f"{st['step']} updates in {_minutes(st['wall'])} wall time; masked-prediction accuracy at the end "
              f"{_f(acc[-1] * 100 if acc else None)}%.", "",
              f"| pre-training updates | PER {x} (%), seed {seed1} | best dev PER (%) |", "|---|---|---|"]
        pts = sorted((int(p[3:]), p) for p in probes if re.fullmatch(r"pre\d+", p))
        if pretrain_last is not None and "laser0" in probes:
            pts.append((pretrain_last, "laser0"))
        for u, p in sorted(pts):
            r = probes[p].get(seed1)
            if r:
                L.append(f"| {u} | {_f(r['per'].get(x))} | {_f(r['best_valid'])} |")
        L.append("")

    # ---- before / after, every seed
    lasers = {os.path.basename(d)[len("laser_"):]: read_laser(d)
              for d in sorted(glob.glob(os.path.join(expdir, "laser_*"))) if os.path.isfile(os.path.join(d, "checkpoint.pth"))}
    L += ["## Before / after LASER (PR probe, every seed)", ""] + before_after(probes, lasers, x, "PER", flat)
    asr = read_probes(expdir, flat, "asr")
    if asr:
        L += ["## Before / after LASER (ASR probe: WER, characters CTC, greedy)", ""]
        xa = _test_set(asr)
        L += before_after(asr, lasers, xa, "WER", flat)
        aseed = min(s for p in asr.values() for s in p)
        for s, v in lasers.items():
            pts = [(0, "laser0")] + sorted((int(p.rsplit("_u", 1)[1]), p) for p in asr if p.startswith(f"{s}_u"))
            if len(pts) < 3:  # no point between before and after
                continue
            L += [f"## WER curve over LASER fine-tuning: {s} (ASR probe, seed {aseed})", "",
                  f"| update | WER {xa} (%) | best dev error (%) |", "|---|---|---|"]
            for u, p in pts:
                r = asr.get(p, {}).get(aseed)
                L.append(f"| {u} | {_f(r['per'].get(xa)) if r else '-'} | "
                         f"{_f(r['best_valid']) if r else '-'} |")
            L.append("")

    # ---- curves over LASER with diagnostics
    for s, v in lasers.items():
        L += [f"## PR curve over LASER fine-tuning: {s} (lr {v['lr']:g}, last {v['train_last']} layers; "
              f"{v['steps']} updates in {_minutes(v['wall'])})", "",
              f"| update | PER {x} (%), seed {seed1} | best dev PER (%) | " + " | ".join(DIAGS) + " |",
              "|---" * (3 + len(DIAGS)) + "|"]
        pts = [(0, "laser0")] + sorted((int(p.rsplit("_u", 1)[1]), p) for p in probes if p.startswith(f"{s}_u"))
        for u, p in pts:
            r = probes.get(p, {}).get(seed1)
            d = v["diag"].get(u)
            diag = [_f(d[k], 3 if k not in ("sdtw_div", "idm") else 1) if d else "-" for k in DIAGS]
            L.append(f"| {u} | {_f(r['per'].get(x)) if r else '-'} | {_f(r['best_valid']) if r else '-'} | "
                     + " | ".join(diag) + " |")
        L.append("")
    L += ["Diagnostics: of the last batch at that update (bljust.losses.laser_diagnostics); none at update 0.", ""]

    # ---- every probe
    L += ["## Every probe", "", "| probe | task | seed | updates | error rate test (%) | dev error by validation round "
          "| wall |", "|---|---|---|---|---|---|---|"]
    for task, runs in (("pr", probes), ("asr", asr)):
        for p in sorted(runs):
            for s, r in sorted(runs[p].items()):
                L.append(f"| {p} | {task} | {s} | {r['steps']} | {_f(r['per'].get(_test_set(runs)))} | "
                         + " ".join(f"{v:.1f}" for _, v in r["valid"]) + f" | {_minutes(r['wall'])} |")
    return "\n".join(L) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--expdir", required=True)
    p.add_argument("--pretrain_dir", help="the pre-training folder (its checkpoint.pth: cost, accuracy)")
    p.add_argument("--pretrain_last", type=int, help="pre-training updates of the upstream LASER starts from")
    p.add_argument("--flat", type=float, default=1.0, help="PER points within which a dev curve counts as flat")
    p.add_argument("--out", help="write the tables here as well as to stdout")
    p.add_argument("--verbose", type=int, default=1)
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")
    a = p.parse_args(argv)
    setup_logging(a.verbose)

    def body() -> int:
        text = summarize(a.expdir, a.pretrain_dir, a.pretrain_last, a.flat)
        if a.out:
            with atomic_write(a.out) as f:
                f.write(text)
        sys.stdout.write(text)
        return 0

    return cli.run(body, a.debug)


if __name__ == "__main__":
    sys.exit(main())
