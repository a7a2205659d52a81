"""Scoring: trn files, sclite (WER/CER/TER, stm/glm) and RESULTS.md summaries."""
