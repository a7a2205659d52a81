"""Converts an upstream checkpoint between torchaudio, fairseq and Hugging Face layouts
(e.g. a LASER fine-tuned upstream.pth for s3prl):

    python -m bljust.bin.convert_upstream exp/ssft/upstream.pth hubert_laser.pt --to fairseq
"""
from __future__ import annotations

import sys
from typing import List, Optional

from bljust.nets import upstream_convert
from bljust.utils import cli
from bljust.utils.log import setup_logging


def main(argv: Optional[List[str]] = None) -> int:
    """Errors (a refused or damaged checkpoint, ...) are one line; --debug adds the traceback."""
    setup_logging(1)
    return cli.main_guard(argv, upstream_convert.main)


if __name__ == "__main__":
    sys.exit(main())
