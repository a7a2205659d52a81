"""bljust: an ESPnet-style recipe toolkit for semi-supervised speech recognition
with bilevel training (BL-JUST) and soft-DTW self-supervised fine-tuning (LASER)."""

__version__ = "0.1.0"
