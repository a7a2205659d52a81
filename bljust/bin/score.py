"""Scores a decode directory with sclite: WER, CER (<space> as a token) and TER.

    python -m bljust.bin.score --data_dir data/test --decode_dir exp/x/decode_test \\
        [--token_dir data/token_list/bpe300] [--metrics wer,cer,ter] [--stm data/test/stm --glm data/test/glm]

References come from <data_dir>/text, or with --stm from the stm lines whose
(recording, start, end) match <data_dir>/segments (TED-LIUM). --glm filters
references and hypotheses (csrfilt.sh from SCTK, else a Python rule applier)
before WER/CER. Writes <decode_dir>/score_<metric>/{ref.trn,hyp.trn,result.txt}.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Dict, List, Optional

from typeguard import typechecked

from bljust.score.sclite import ScliteNotFound, score
from bljust.score.trn import stm_to_text
from bljust.utils.fileio import FormatError, read_table
from bljust.utils.log import setup_logging


def _tokenize_fn(token_dir: str):
    from bljust.text.tokenizer import Tokenizer

    tok = Tokenizer.from_dir(token_dir)
    # The raw pieces: a piece missing from tokens.txt stays itself (an error the
    # model could not avoid) rather than matching a hypothesised <unk>.
    if hasattr(tok, "tokens"):
        return lambda text: " ".join(tok.tokens(text))
    return lambda text: " ".join(tok.ids_to_tokens(tok.encode(text)))


@typechecked
def score_decode_dir(data_dir: str, decode_dir: str, metrics: List[str], token_dir: Optional[str] = None,
                     stm: Optional[str] = None, glm: Optional[str] = None,
                     sclite: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    hyp_path = os.path.join(decode_dir, "text")
    if not os.path.isfile(hyp_path):
        raise FileNotFoundError(f"{hyp_path}: no hypotheses (run bljust.bin.decode first)")
    if stm:
        ref = stm_to_text(stm, os.path.join(data_dir, "segments"))
    else:
        ref = read_table(os.path.join(data_dir, "text"), allow_empty_value=True)
    hyp = read_table(hyp_path, allow_empty_value=True)
    u2s_path = os.path.join(data_dir, "utt2spk")
    utt2spk = read_table(u2s_path) if os.path.isfile(u2s_path) else None
    hyp_tokens = ref_tokenize = None
    if "ter" in metrics:
        if not token_dir:
            raise ValueError("--metrics ter needs --token_dir (the token list and bpe.model)")
        hyp_tokens = read_table(os.path.join(decode_dir, "token"), allow_empty_value=True)
        ref_tokenize = _tokenize_fn(token_dir)
    return score(decode_dir, ref, hyp, metrics, utt2spk, hyp_tokens, ref_tokenize, glm, sclite)


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
