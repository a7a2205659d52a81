"""Corpus-specific data preparation: from a corpus's download layout to Kaldi data dirs."""
