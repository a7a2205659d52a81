"""Kaldi-compatible fbank features to ark/scp, audio reading, CMVN statistics."""
