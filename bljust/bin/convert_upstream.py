"""Converts an upstream checkpoint between torchaudio, fairseq and Hugging Face layouts
(e.g. a LASER fine-tuned upstream.pth for s3prl):

    python -m bljust.bin.convert_upstream exp/ssft/upstream.pth hubert_laser.pt --to fairseq
"""
from __future__ import annotations

import sys
from typing import List, Optional

from bljust.nets import upstream_convert


def main(argv: Optional[List[str]] = None) -> int:
    return upstream_convert.main(argv)


if __name__ == "__main__":
    sys.exit(main())
