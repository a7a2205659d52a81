"""Shared helpers: Kaldi text tables and atomic writes, logging, PNG curves."""
