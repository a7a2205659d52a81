"""SentencePiece tokenizers and token lists."""
