"""Scores a decode directory with sclite: WER, CER (<space> as a token) and TER.

    python -m bljust.bin.score --data_dir data/test --decode_dir exp/x/decode_test \\
        [--token_dir data/token_list/bpe300] [--metrics wer,cer,ter] [--stm data/test/stm --glm data/test/glm]

References come from <data_dir>/text, or with --stm from the stm lines whose
(recording, start, end) match <data_dir>/segments (TED-LIUM); --glm filters both
before WER/CER (bljust.score.sclite.score_decode_dir). Writes
<decode_dir>/score_<metric>/{ref.trn,hyp.trn,result.txt}.
"""
from __future__ import annotations

import argparse
import logging
import sys

from bljust.score.sclite import ScliteNotFound, score_decode_dir
from bljust.utils.fileio import FormatError
from bljust.utils.log import setup_logging


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", "--ref_dir", dest="data_dir", required=True, help="text, utt2spk (segments)")
    p.add_argument("--decode_dir", "--hyp_dir", dest="decode_dir", required=True,
                   help="holds text (and token) from bljust.bin.decode")
    p.add_argument("--token_dir", default=None, help="needed for TER")
    p.add_argument("--metrics", default=None, help="comma-separated subset of wer,cer,ter "
                   "(default: wer,cer, and ter with --token_dir)")
    p.add_argument("--stm", default=None, help="reference stm (TED-LIUM); matched via <data_dir>/segments")
    p.add_argument("--glm", default=None, help="global mapping file applied to refs and hyps")
    p.add_argument("--sclite", default=None, help="sclite binary (default: tools/sctk/bin/sclite, then PATH)")
    p.add_argument("--verbose", type=int, default=1)
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    metrics_arg = a.metrics or ("wer,cer,ter" if a.token_dir else "wer,cer")
    metrics = [m.strip().lower() for m in metrics_arg.split(",") if m.strip()]
    try:
        res = score_decode_dir(a.data_dir, a.decode_dir, metrics, a.token_dir, a.stm, a.glm, a.sclite)
    except (FileNotFoundError, FormatError, ValueError, ScliteNotFound, RuntimeError) as e:
        logging.error("%s", e)
        return 1
    for m, r in res.items():
        logging.info("%s %s: %.2f", a.decode_dir, m.upper(), r["Err"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
