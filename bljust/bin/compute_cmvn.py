"""CMVN statistics of a feats.scp in Kaldi's 2 x (D+1) format, and speaker/utterance CMVN.

Global (what the trainer's --cmvn reads):
  python -m bljust.bin.compute_cmvn --feats_scp dump/fbank/train/feats.scp --out dump/fbank/train/cmvn.ark
Global, from the stats the extraction jobs already summed (Kaldi's sum-matrices; no pass
over the features; several files are added up):
  python -m bljust.bin.compute_cmvn --stats dump/fbank/train/data/feats.cmvn --out dump/fbank/train/cmvn.ark
Global, over a sample of a feature dir, dumped or raw (asr.sh --feats_type raw computes the
fbank of the sampled utterances from their audio):
  python -m bljust.bin.compute_cmvn --data_dir dump/raw/org/train --num_utts 1000 --out dump/raw/org/train/cmvn.ark
Per speaker (ark + scp keyed by speaker):
  python -m bljust.bin.compute_cmvn --feats_scp F --utt2spk data/train/utt2spk --out cmvn_spk.ark --out_scp cmvn_spk.scp
Per speaker or per utterance, and the features normalised with them (Kaldi's apply-cmvn):
  python -m bljust.bin.compute_cmvn --cmvn_type speaker --feats_scp D/feats_raw.scp --utt2spk D/utt2spk \
      --out D/cmvn_speaker.ark --apply_ark D/data/feats_cmvn.ark --apply_scp D/feats.scp
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from bljust.features.cmvn import CMVN_TYPES, apply_per_key, compute_stats, sum_stats, write_global, write_per_key
from bljust.utils.fileio import FormatError, read_table
from bljust.utils.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--feats_scp", help="features to accumulate (every matrix)")
    p.add_argument("--data_dir", help="instead of --feats_scp: a feature dir, dumped or raw (global stats only)")
    p.add_argument("--stats", nargs="+", help="instead of --feats_scp: global stats matrices to add up "
                   "(the extraction jobs' feats.cmvn)")
    p.add_argument("--num_utts", type=int, default=0, help="with --data_dir: stats of this many utterances "
                   "drawn at random (0: all)")
    p.add_argument("--seed", type=int, default=0, help="with --num_utts: the draw")
    p.add_argument("--out", required=True, help="output stats (global: one matrix; per speaker/utterance: an ark)")
    p.add_argument("--cmvn_type", choices=CMVN_TYPES,
                   help="default: speaker when --utt2spk is given, else global")
    p.add_argument("--utt2spk", help="speaker of each utterance (for --cmvn_type speaker)")
    p.add_argument("--out_scp", help="scp for per-key stats (default: --out with .scp)")
    p.add_argument("--apply_ark", help="write the features normalised with the per-key stats to this ark")
    p.add_argument("--apply_scp", help="... and their scp (with --apply_ark)")
    p.add_argument("--verbose", type=int, default=1)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.verbose)
    kind = args.cmvn_type or ("speaker" if args.utt2spk else "global")
    try:
        if sum(map(bool, (args.feats_scp, args.data_dir, args.stats))) != 1:
            raise ValueError("give one of --feats_scp, --data_dir and --stats")
        if args.stats:
            if kind != "global" or args.apply_ark:
                raise ValueError("--stats gives global stats; per-speaker/utterance stats need --feats_scp")
            stats = sum_stats(args.stats)
            write_global(args.out, stats)
            logging.info("wrote global stats of %d frames (the sum of %s) to %s", int(stats[0, -1]),
                         " ".join(args.stats), args.out)
            return 0
        if args.data_dir:
            # torch (for the fbank of raw audio) only here: the other ways start in a fraction of the time
            from bljust.data.dataset import sample_global_stats

            if kind != "global" or args.apply_ark:
                raise ValueError("--data_dir gives global stats; per-speaker/utterance stats need --feats_scp")
            write_global(args.out, sample_global_stats(args.data_dir, args.num_utts, args.seed)[0])
            logging.info("wrote global stats to %s", args.out)
            return 0
        if not os.path.isfile(args.feats_scp):
            raise FileNotFoundError(f"feats scp not found: {args.feats_scp}")
        if kind == "speaker" and not args.utt2spk:
            raise ValueError("--cmvn_type speaker needs --utt2spk")
        if bool(args.apply_ark) != bool(args.apply_scp):
            raise ValueError("--apply_ark and --apply_scp go together")
        if args.apply_ark and kind == "global":
            raise ValueError("global CMVN is applied inside the model; --apply_ark is for speaker or utterance CMVN")
        if kind == "global":
            write_global(args.out, compute_stats(args.feats_scp)["global"])
            logging.info("wrote global stats to %s", args.out)
            return 0
        if kind == "speaker":
            key_of = read_table(args.utt2spk)
        else:  # every utterance its own key
            key_of = {k: k for k in read_table(args.feats_scp)}
        utt2key = os.path.join(os.path.dirname(os.path.abspath(args.out)), ".utt2key") if kind == "utterance" else None
        if utt2key:
            with open(utt2key, "w", encoding="utf-8") as f:
                f.writelines(f"{k} {k}\n" for k in sorted(key_of, key=lambda s: s.encode("utf-8")))
        try:
            stats = compute_stats(args.feats_scp, utt2key or args.utt2spk)
        finally:
            if utt2key and os.path.exists(utt2key):
                os.unlink(utt2key)
        scp = args.out_scp or os.path.splitext(args.out)[0] + ".scp"
        write_per_key(args.out, scp, stats)
        logging.info("wrote %s stats of %d %ss to %s (%s)", kind, len(stats), kind, args.out, scp)
        if args.apply_ark:
            n = apply_per_key(args.feats_scp, args.apply_ark, args.apply_scp, stats, key_of)
            logging.info("normalised %d utterances with their %s's stats into %s", n, kind, args.apply_scp)
        return 0
    except (FormatError, ValueError, OSError) as e:
        logging.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
