"""A tiny corpus as a stranger would bring it: 8 kHz WAVs in <set>/<speaker>/ folders and a transcripts file."""
import os
import subprocess

WORDS = ["red", "green", "blue", "one", "two", "three", "cat", "dog", "sits", "runs", "the", "a"]
VOICES = {"train": ["en-us", "en-gb", "en-us+f2", "en-gb-scotland"], "dev": ["en-029"], "test": ["en-us-nyc"]}
PER_SPEAKER = {"train": 8, "dev": 4, "test": 4}


def sentence(i: int) -> str:
    return " ".join(WORDS[(i * k + k * k) % len(WORDS)] for k in range(1, 4 + i % 3))


def make_corpus(root: str, fs: int = 8000) -> str:
    """Writes <root>/<set>/<speaker>/<name>.wav (espeak-ng, resampled with sox) and <set>/transcripts.txt."""
    n = 0
    for set_name, voices in VOICES.items():
        lines = []
        for s, voice in enumerate(voices):
            spk = f"{set_name}spk{s}"
            os.makedirs(os.path.join(root, set_name, spk))
            for i in range(PER_SPEAKER[set_name]):
                name, words = f"{spk}_{i:03d}", sentence(n)
                n += 1
                raw = os.path.join(root, "tmp.wav")
                subprocess.run(["espeak-ng", "-v", voice, "-s", str(140 + 10 * (i % 4)), "-w", raw, words],
                               check=True, capture_output=True)
                subprocess.run(["sox", raw, "-r", str(fs), "-c", "1", "-b", "16",
                                os.path.join(root, set_name, spk, f"{name}.wav")], check=True, capture_output=True)
                lines.append(f"{name} {words}\n")
        with open(os.path.join(root, set_name, "transcripts.txt"), "w") as f:
            f.writelines(lines)
    os.unlink(os.path.join(root, "tmp.wav"))
    return root
