"""Drop utterances a CTC model cannot use; write a valid data dir and <out>/filtered.txt.

python -m bljust.bin.filter_data [--subsampling 4] [--min_frames N] [--max_frames N]
    [--feats_dir DIR] [--token_dir DIR | --bpemodel M | --token_counts FILE] [--no_text]
    <in_dir> <out_dir>          (or --in_dir DIR --out_dir DIR)

Frame counts come from utt2num_frames (10 ms frames) in <in_dir> or --feats_dir.
The floor is --min_frames, raised to what --subsampling needs when that is given
(x4 when neither is). Reasons written to filtered.txt: no_features, too_short,
too_long, empty_text, ctc_infeasible. feat_dim, feats_type and feats_conf.yaml are copied along
(a raw feature dir keeps its wav.scp, segments and utt2num_samples, subset).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from bljust.data.datadir_filter import filter_data_dir
from bljust.utils.fileio import FormatError
from bljust.utils.log import setup_logging


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
