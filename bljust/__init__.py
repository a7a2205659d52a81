"""bljust: an ESPnet-style recipe toolkit for semi-supervised speech recognition
with bilevel training (BL-JUST) and soft-DTW self-supervised fine-tuning (LASER)."""

__version__ = "0.1.0"

__all__ = ["Speech2Text"]


def __getattr__(name: str):
    # Lazy: `import bljust` stays cheap (no torch) until Speech2Text is asked for.
    if name == "Speech2Text":
        from bljust.inference import Speech2Text

        return Speech2Text
    raise AttributeError(f"module 'bljust' has no attribute {name!r}")
