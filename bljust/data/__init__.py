"""Kaldi data directories (read, write, validate, split, perturb), corpora, datasets and batching."""
