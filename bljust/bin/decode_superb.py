"""Decodes a data dir with a trained SUPERB downstream, or summarises scored runs.

    python -m bljust.bin.decode_superb --model_dir exp/superb_asr --data_dir data/test \
        --output_dir exp/superb_asr/decode_greedy/test [--decode_method beam --beam_size 10]
    python -m bljust.bin.decode_superb --summarize exp [--out exp/RESULTS.md]

Decoding writes <output_dir>/text: words (ASR) or space-separated phonemes (PR).
With --write_ref (PR) it also writes <output_dir>/ref/{text,utt2spk} from the data
dir's text.phn, so that `bljust.bin.score --data_dir <output_dir>/ref` scores phonemes
as words: its WER is the phone error rate.
--summarize reads exp/superb_<tag>_<task>/<decode>/<set>/score_wer/result.txt and writes
a table of error rates, one row per tag (e.g. before / after LASER).
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
from typing import Dict, List, Optional

from bljust.score.sclite import parse_result
from bljust.train.superb_trainer import decode_superb
from bljust.utils.fileio import atomic_write, read_table, write_table
from bljust.utils import cli
from bljust.utils.log import setup_logging


def write_phone_ref(data_dir: str, out_dir: str) -> None:
    phn = os.path.join(data_dir, "text.phn")
    if not os.path.isfile(phn):
        raise FileNotFoundError(f"{phn} not found: phone recognition needs phoneme transcripts")
    ref = os.path.join(out_dir, "ref")
    os.makedirs(ref, exist_ok=True)
    write_table(os.path.join(ref, "text"), read_table(phn, allow_empty_value=True).items())
    shutil.copyfile(os.path.join(data_dir, "utt2spk"), os.path.join(ref, "utt2spk"))


def summarize(exp: str) -> str:
    rows: Dict[str, Dict[str, float]] = {}
    sets: Dict[str, set] = {"asr": set(), "pr": set()}
    for res in sorted(glob.glob(os.path.join(exp, "superb_*_*", "*", "*", "score_wer", "result.txt"))):
        parts = res.split(os.sep)
        tag_task, x = parts[-5], parts[-3]
        tag, task = tag_task[len("superb_"):].rsplit("_", 1)
        if task not in sets:
            continue
        rows.setdefault(tag, {})[f"{task}:{x}"] = float(parse_result(res)["Err"])
        sets[task].add(x)
    cols = [f"pr:{x}" for x in sorted(sets["pr"])] + [f"asr:{x}" for x in sorted(sets["asr"])]
    head = ["upstream"] + [("PER " if c.startswith("pr") else "WER ") + c.split(":")[1] + " (%)" for c in cols]
    lines = ["# SUPERB evaluation before / after LASER fine-tuning", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = sorted(rows, key=lambda t: (t != "before", t))
    for tag in order:
        lines.append("| " + " | ".join([tag] + [f"{rows[tag][c]:.1f}" if c in rows[tag] else "-" for c in cols]) + " |")
    if "before" in rows:
        for tag in order[1:]:
            rel = [f"{100 * (rows['before'][c] - rows[tag][c]) / rows['before'][c]:+.1f}%"
                   if c in rows[tag] and c in rows["before"] and rows["before"][c] > 0 else "-" for c in cols]
            lines.append("| " + " | ".join([f"{tag}: relative improvement"] + rel) + " |")
    lines += ["", "PER: phone error rate of the PR downstream (linear CTC over text.phn phonemes);",
              "WER: word error rate of the ASR downstream (BiLSTM-CTC over characters), greedy CTC decoding",
              "unless the decode folder says otherwise. Scored with sclite (score_wer/result.txt)."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir")
    p.add_argument("--data_dir")
    p.add_argument("--output_dir")
    p.add_argument("--decode_method", default="greedy", choices=["greedy", "beam"])
    p.add_argument("--beam_size", type=int, default=10)
    p.add_argument("--max_batch", type=int, default=16)
    p.add_argument("--max_samples", type=int, default=3200000)
    p.add_argument("--ngpu", type=int, default=0)
    p.add_argument("--write_ref", action="store_true", help="also write ref/ from text.phn (PR)")
    p.add_argument("--summarize", metavar="EXP_DIR")
    p.add_argument("--out", help="with --summarize: where to write the table (default: print)")
    p.add_argument("--verbose", type=int, default=1)
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    if not a.summarize and not (a.model_dir and a.data_dir and a.output_dir):
        p.error("--model_dir, --data_dir and --output_dir are required (or --summarize)")
    return cli.run(lambda: _main(a), a.debug)


def _main(a: argparse.Namespace) -> int:
    if a.summarize:
        table = summarize(a.summarize)
        if a.out:
            with atomic_write(a.out) as f:
                f.write(table)
        sys.stdout.write(table)
        return 0
    decode_superb(a.model_dir, a.data_dir, a.output_dir, a.decode_method, a.beam_size, a.max_samples,
                  a.max_batch, a.ngpu)
    if a.write_ref:
        write_phone_ref(a.data_dir, a.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
