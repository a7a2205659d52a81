"""One logging format for every entry point (Kaldi/ESPnet-like: time, level, module)."""
from __future__ import annotations

import logging
import sys


def setup_logging(verbose: int = 1) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
        force=True,
    )
