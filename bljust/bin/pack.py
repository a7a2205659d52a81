"""Pack a trained experiment into one archive that loads anywhere (ESPnet's pack is the model).

    python -m bljust.bin.pack --exp_dir exp/asr_x --out exp/asr_x/packed/asr_x.zip \\
        [--token_dir data/token_list/bpe_unigram128] [--fbank_conf conf/fbank.yaml] [--fs 16000]

The archive holds model.safetensors, config.yaml, tokens.txt, bpe.model, fbank.yaml,
cmvn.yaml, RESULTS.md and a model card README.md (see bljust/pack.py).
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from typeguard import typechecked

from bljust.utils.log import setup_logging


@typechecked
def run_pack(exp_dir: str, out: str, token_dir: Optional[str], fbank_conf: Optional[str], fs: Optional[int],
             model_file: str) -> str:
    from bljust.pack import pack_experiment

    if not out.endswith(".zip"):
        raise ValueError(f"--out {out}: the archive name must end in .zip")
    if fs is not None and fs <= 0:
        raise ValueError(f"--fs {fs}: a sample rate is positive")
    return pack_experiment(exp_dir, out, token_dir, fbank_conf, fs, model_file)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bljust.bin.pack", description=__doc__.split("\n")[0])
    p.add_argument("--exp_dir", required=True)
    p.add_argument("--out", required=True, help="the archive to write (.zip)")
    p.add_argument("--model_file", default="model.pth", help="the model in exp_dir to pack (default: the average)")
    p.add_argument("--token_dir", default=None, help="default: the config's token_dir")
    p.add_argument("--fbank_conf", default=None, help="fbank YAML the features were made with (default: what the "
                   "config records, else exp_dir/fbank.yaml, else the defaults)")
    p.add_argument("--fs", type=int, default=None, help="sample rate of the features (default: as recorded, else 16000)")
    p.add_argument("--verbose", type=int, default=1)
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    from bljust.inference import ModelLoadError

    try:
        run_pack(a.exp_dir, a.out, a.token_dir, a.fbank_conf, a.fs, a.model_file)
    except (ModelLoadError, FileNotFoundError, ValueError, OSError) as e:
        logging.error("%s", " ".join(str(e).split()))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
