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

from bljust.utils.log import setup_logging


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bljust.bin.pack", description=__doc__.split("\n")[0])
    p.add_argument("--exp_dir", required=True)
    p.add_argument("--out", required=True, help="the archive to write (.zip)")
    p.add_argument("--model_file", default="model.pth", help="the model in exp_dir to pack (default: the average)")
    p.add_argument("--token_dir", default=None, help="default: the config's token_dir")
    p.add_argument("--fbank_conf", default=None, help="fbank YAML the features were made with (default: defaults)")
    p.add_argument("--fs", type=int, default=None, help="sample rate of the features (default: fbank YAML, 16000)")
    p.add_argument("--verbose", type=int, default=1)
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    from bljust.inference import ModelLoadError
    from bljust.pack import pack_experiment

    if not a.out.endswith(".zip"):
        logging.error("--out %s: the archive name must end in .zip", a.out)
        return 1
    try:
        pack_experiment(a.exp_dir, a.out, a.token_dir, a.fbank_conf, a.fs, a.model_file)
    except (ModelLoadError, FileNotFoundError, ValueError, OSError) as e:
        logging.error("%s", " ".join(str(e).split()))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
