"""Losses: the unsupervised lower levels of BL-JUST (CPC/InfoNCE, BEST-RQ, LASER) and soft-DTW."""
