"""One table for the methods of a comparison run: method, dev/test WER over seeds, wall time,
passes, and the significance of each reference row against every other row.

    python -m bljust.bin.compare_results --out exp/compare/RESULTS.md \\
        --reference exp/compare/p1200/train_bljust_cpc_small --significance_sets test \\
        exp/compare/p1200/train_suponly_small exp/compare/p1200/train_bljust_cpc_small ...
    python -m bljust.bin.compare_results --pick_best dev ROW ...   # prints the best row's folder

A row folder holds one run per seed (seed<N>/) or is one run; each run must hold
train_summary.yaml and its scored decodings (see bljust.score.compare). Each row gets
wer_per_seed.tsv. --sweep FILE names a sweep (a file listing its points' row folders, one
per line): the point with the lowest dev WER of its first seed is chosen, and tabulated.
Rerunnable at any time.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from bljust.score.compare import best_by, per_seed_tsv, render, significance, summarise_row
from bljust.utils.fileio import atomic_write
from bljust.utils.log import setup_logging


def _read_list(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        rows = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    if not rows:
        raise ValueError(f"{path}: lists no row folder")
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rows", nargs="+", help="row folders (a run, or one run per seed in seed<N>/)")
    ap.add_argument("--out", help="Markdown file to write")
    ap.add_argument("--inference_tag", default=None, help="the decoding to report (decode_* folder name)")
    ap.add_argument("--reference", action="append", default=[], help="a row whose test hypotheses are tested "
                    "against every other row's (repeatable)")
    ap.add_argument("--significance_sets", nargs="*", default=["test"], help="sets the references are tested on")
    ap.add_argument("--sweep", action="append", default=[], help="a file listing one sweep's point folders")
    ap.add_argument("--tuned", action="append", default=[], help="a row trained with a sweep's chosen settings "
                    "whose sweep is not given here (a budget curve): labeled '(tuned)' (repeatable)")
    ap.add_argument("--topline", default=None, help="the topline row (the gap each reference closes)")
    ap.add_argument("--title", default="Comparison at equal encoder passes")
    ap.add_argument("--pick_best", metavar="SET", default=None,
                    help="print the folder of the row with the lowest WER of its first seed on SET, and exit")
    ap.add_argument("--pick_mean", action="store_true", help="--pick_best by the mean WER over the seeds")
    args = ap.parse_args(argv)
    setup_logging(1)
    try:
        if args.pick_best:
            print(best_by([summarise_row(r, args.inference_tag, first_seed_only=not args.pick_mean) for r in args.rows],
                          args.pick_best, not args.pick_mean)["exp"])
            return 0
        if not args.out:
            ap.error("--out is required (or --pick_best)")
        rows = [summarise_row(r, args.inference_tag) for r in args.rows]
        by_exp = {r["exp"]: r for r in rows}
        sweeps = []
        for path in args.sweep:
            points = [by_exp.get(p) or summarise_row(p, args.inference_tag) for p in _read_list(path)]
            dev = next((s for s in points[0]["wer"] if s.startswith("dev")), sorted(points[0]["wer"])[0])
            chosen = best_by(points, dev, first_seed=True)["exp"]
            sweeps.append({"points": points, "chosen": chosen})
            if chosen in by_exp:
                by_exp[chosen]["suffix"] = " (tuned)"
        for ref in args.reference + args.tuned:
            if ref not in by_exp:
                raise ValueError(f"--reference/--tuned {ref} is not one of the rows")
        for t in args.tuned:
            by_exp[t]["suffix"] = " (tuned)"
        sig = {(ref, r["exp"], s): significance(by_exp[ref], r, s, args.inference_tag)
               for ref in args.reference for s in args.significance_sets for r in rows if r["exp"] != ref}
        for r in rows:
            with atomic_write(os.path.join(r["exp"], "wer_per_seed.tsv")) as f:
                f.write(per_seed_tsv(r))
        text = render(rows, sig=sig, sweeps=sweeps, title=args.title, topline=args.topline, tuned=args.tuned)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        logging.error("%s", e)
        return 1
    with atomic_write(args.out) as f:
        f.write(text)
    logging.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
