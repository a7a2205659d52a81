"""Converts an upstream checkpoint between torchaudio, fairseq and Hugging Face layouts
(e.g. a LASER fine-tuned upstream.pth for s3prl):

    python -m bljust.bin.convert_upstream exp/ssft/upstream.pth hubert_laser.pt --to fairseq \
        --like hubert_base_ls960.pt
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from bljust.nets.upstream_convert import FORMATS, convert_checkpoint
from bljust.utils import cli
from bljust.utils.log import setup_logging


def main(argv: Optional[List[str]] = None) -> int:
    """Errors (a refused or damaged checkpoint, ...) are one line; --debug adds the traceback."""
    setup_logging(1)
    return cli.main_guard(argv, _convert)


def _convert(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="checkpoint to read (torchaudio, fairseq or Hugging Face; told from its keys)")
    p.add_argument("dst", help="file to write")
    p.add_argument("--to", choices=FORMATS, required=True)
    p.add_argument("--prefix", default="", help="prepended to every key (e.g. 'hubert.' for a wrapper)")
    p.add_argument("--like", metavar="ORIGINAL", default=None,
                   help="the checkpoint the upstream was imported from, in the --to layout: the output is that "
                        "file with the upstream's tensors replaced (its cfg/args, heads, prefix and key spelling "
                        "kept), so it loads wherever the original did; --prefix is then not used")
    p.add_argument("--trust_checkpoint", action="store_true",
                   help="unpickle the Python objects of a fairseq checkpoint (only for files you trust)")
    a = p.parse_args(argv)
    kind = convert_checkpoint(a.src, a.dst, a.to, a.prefix, a.trust_checkpoint, like=a.like)
    logging.info("wrote the %s upstream of %s to %s (%s layout)", kind, a.src, a.dst, a.to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
