"""Makes torchaudio importable beside a CPU-only torch, only where that is needed.

torchaudio's PyPI wheels are CUDA builds: their compiled libraries link
libc10_cuda.so, which a CPU-only torch does not ship, so `import torchaudio`
fails. What bljust uses of torchaudio is pure Python (compliance.kaldi.fbank,
functional.resample / pitch_shift, models.Conformer, the wav2vec2 / HuBERT /
WavLM builders and importers), so the compiled libraries are moved aside into
`torchaudio/lib/disabled-cuda-only/`; torchaudio then loads without them (the
ops that need them, rnnt_loss and forced_align, are unavailable). Nothing is
touched when torchaudio already imports, or when torch itself has CUDA.
"""
import importlib.util
import os
import shutil
import subprocess
import sys


def imports_cleanly() -> bool:
    return subprocess.run([sys.executable, "-c", "import torchaudio"], capture_output=True).returncode == 0


def main() -> int:
    if imports_cleanly():
        return 0
    import torch

    spec = importlib.util.find_spec("torchaudio")
    if spec is None or spec.origin is None:
        print("[fix_torchaudio_cpu] torchaudio is not installed", file=sys.stderr)
        return 1
    if torch.version.cuda is not None:
        print("[fix_torchaudio_cpu] torch has CUDA yet torchaudio fails to import; "
              "install the torchaudio build that matches torch " + torch.__version__, file=sys.stderr)
        return 1
    libdir = os.path.join(os.path.dirname(spec.origin), "lib")
    aside = os.path.join(libdir, "disabled-cuda-only")
    os.makedirs(aside, exist_ok=True)
    moved = [f for f in sorted(os.listdir(libdir)) if f.endswith(".so")]
    for f in moved:
        shutil.move(os.path.join(libdir, f), os.path.join(aside, f))
    print(f"[fix_torchaudio_cpu] torch {torch.__version__} is CPU-only and torchaudio's libraries are CUDA "
          f"builds: moved {', '.join(moved)} to {aside}; the pure-Python parts of torchaudio work, "
          "rnnt_loss and forced_align do not")
    if not imports_cleanly():
        print("[fix_torchaudio_cpu] torchaudio still fails to import", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
