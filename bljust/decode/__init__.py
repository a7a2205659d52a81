"""CTC decoding: greedy and prefix beam search, and decoding of whole data directories."""
