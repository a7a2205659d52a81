"""Entry points, one per recipe stage: `python -m bljust.bin.<name> --help`."""
