"""Drop utterances a CTC model cannot use; write a valid data dir and <out>/filtered.txt.

python -m bljust.bin.filter_data [--subsampling 4] [--min_frames N] [--max_frames N]
    [--feats_dir DIR] [--token_dir DIR | --bpemodel M | --token_counts FILE] [--no_text]
    <in_dir> <out_dir>          (or --in_dir DIR --out_dir DIR)

Frame counts come from utt2num_frames (10 ms frames) in <in_dir> or --feats_dir.
The floor is --min_frames, raised to what --subsampling needs when that is given
(x4 when neither is). Reasons written to filtered.txt: no_features, too_short,
too_long, empty_text, ctc_infeasible. feat_dim is copied along.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from typing import Dict, List, Optional

from typeguard import typechecked

from bljust.data.datadir import DataDir
from bljust.data.datadir_filter import filter_utterances, min_frames_for_subsampling, reason_counts
from bljust.utils.fileio import FormatError, atomic_write, read_table
from bljust.utils.log import setup_logging

log = logging.getLogger("bljust.filter_data")


def _token_ids(text: Dict[str, str], bpemodel: str) -> Dict[str, List[int]]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=bpemodel)
    keys = list(text)
    return dict(zip(keys, sp.encode([text[k] for k in keys], out_type=int)))


@typechecked
def filter_data_dir(in_dir: str, out_dir: str, subsampling: Optional[int] = None,
                    min_frames: Optional[int] = None, max_frames: Optional[int] = None,
                    feats_dir: Optional[str] = None, bpemodel: Optional[str] = None,
                    token_counts: Optional[str] = None, no_text: bool = False) -> Dict[str, int]:
    """Filters in_dir into out_dir; returns {reason: dropped count}."""
    if subsampling is None and (bpemodel or token_counts):
        raise ValueError("the CTC length check needs --subsampling")
    if subsampling is None and min_frames is None:
        subsampling = 4
    dd = DataDir.read(in_dir)
    if no_text:  # unlabeled data: a stray text file must not decide what is kept
        dd.tables.pop("text", None)
        dd.tables.pop("text.phn", None)
    if feats_dir:  # features written beside the data dir: bring them in so out_dir is complete
        for name in ("feats.scp", "utt2num_frames"):
            p = os.path.join(feats_dir, name)
            if os.path.isfile(p):
                dd.tables[name] = read_table(p)
    if not dd.has("utt2num_frames"):
        raise FormatError(os.path.join(feats_dir or in_dir, "utt2num_frames"), 0,
                          "missing: extract features first (it is written beside feats.scp)")
    frames: Dict[str, int] = {}
    for utt, v in dd.tables["utt2num_frames"].items():
        if not v.isdigit():
            raise FormatError(os.path.join(feats_dir or in_dir, "utt2num_frames"), 0, f"'{utt}': '{v}' is not a count")
        frames[utt] = int(v)
    ids = _token_ids(dd.tables.get("text", {}), bpemodel) if bpemodel else None
    counts = {k: int(v) for k, v in read_table(token_counts).items()} if token_counts else None

    keep, dropped = filter_utterances(dd, frames, subsampling, min_frames, max_frames, ids, counts)
    dd.subset(keep).write(out_dir)
    for name in ("feat_dim",):
        src = os.path.join(feats_dir or in_dir, name)
        if os.path.isfile(src) and os.path.abspath(src) != os.path.abspath(os.path.join(out_dir, name)):
            shutil.copyfile(src, os.path.join(out_dir, name))
    with atomic_write(os.path.join(out_dir, "filtered.txt")) as f:
        for utt in sorted(dropped, key=lambda u: u.encode()):
            f.write(f"{utt} {dropped[utt]}\n")
    stats = reason_counts(dropped)
    floor = max(min_frames or 0, min_frames_for_subsampling(subsampling) if subsampling else 0)
    log.info("%s -> %s: kept %d of %d utterances (at least %d frames%s)", in_dir, out_dir,
             len(keep), len(dd.utt2spk), floor, f", at most {max_frames}" if max_frames else "")
    for reason, n in stats.items():
        log.info("dropped %d: %s", n, reason)
    return stats


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subsampling", type=int, default=None, help="encoder subsampling factor (1, 2, 4, 6, 8)")
    p.add_argument("--min_frames", type=int, default=None, help="fewest frames kept")
    p.add_argument("--max_frames", type=int, default=None)
    p.add_argument("--feats_dir", default=None, help="where feats.scp and utt2num_frames are, if not in in_dir")
    p.add_argument("--token_dir", default=None, help="token dir holding bpe.model (for the CTC length check)")
    p.add_argument("--bpemodel", default=None)
    p.add_argument("--token_counts", default=None, help="file 'utt count' (instead of a bpe model)")
    p.add_argument("--no_text", action="store_true", help="unlabeled data: ignore text")
    p.add_argument("--verbose", type=int, default=1)
    p.add_argument("--in_dir", dest="in_dir_opt", default=None)
    p.add_argument("--out_dir", dest="out_dir_opt", default=None)
    p.add_argument("dirs", nargs="*", metavar="in_dir out_dir")
    a = p.parse_args(argv)
    dirs = [d for d in (a.in_dir_opt, a.out_dir_opt) if d] + a.dirs
    if len(dirs) != 2:
        p.error("give an input and an output directory")
    setup_logging(a.verbose)
    bpemodel = a.bpemodel or (os.path.join(a.token_dir, "bpe.model") if a.token_dir else None)
    try:
        if bpemodel and not os.path.isfile(bpemodel):
            raise FileNotFoundError(f"{bpemodel}: no such SentencePiece model")
        filter_data_dir(dirs[0], dirs[1], a.subsampling, a.min_frames, a.max_frames,
                        a.feats_dir, bpemodel, a.token_counts, a.no_text)
    except (FormatError, ValueError, FileNotFoundError) as e:
        logging.getLogger(__name__).error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
