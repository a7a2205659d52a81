import numpy as np
import pytest
import soundfile as sf


def speechlike(seconds: float, seed: int, fs: int = 16000) -> np.ndarray:
    """int16 audio with a moving harmonic tone, noise and silence, so every mel bin gets energy."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / fs
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * 3000
    x *= (np.sin(2 * np.pi * 2 * t) > -0.3)
    x += rng.standard_normal(n) * 200
    return np.clip(x, -32768, 32767).astype(np.int16)


def write_wav(path: str, x: np.ndarray, fs: int = 16000, fmt: str = "WAV") -> str:
    sf.write(path, x, fs, format=fmt, subtype="PCM_16")
    return path


@pytest.fixture
def make_data_dir(tmp_path):
    """make_data_dir({utt: spec}, segments=None) -> data dir path; spec is an int16 array or a wav.scp value."""

    def make(entries, segments=None, name="data"):
        d = tmp_path / name
        (d / "audio").mkdir(parents=True, exist_ok=True)
        lines = []
        for utt, spec in entries:
            if isinstance(spec, np.ndarray):
                spec = write_wav(str(d / "audio" / f"{utt}.wav"), spec)
            lines.append(f"{utt} {spec}\n")
        (d / "wav.scp").write_text("".join(lines))
        if segments:
            (d / "segments").write_text("".join(f"{s}\n" for s in segments))
        return str(d)

    return make
