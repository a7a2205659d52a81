"""A synthetic stand-in for LibriSpeech's 960 h training set, for the loader and scale benchmarks.

No audio: what the data tools and the loader see of a corpus is its tables and its
lengths. The figures follow LibriSpeech train-clean-100 + train-clean-360 +
train-other-500: 281,241 utterances, 2,338 speakers, 960.9 h (mean 12.3 s, nearly all
between 1 and 35 s, most of them 11-17 s, because the corpus was cut at pauses with a
35 s cap), ids `<speaker>-<chapter>-<index>` as in `103-1240-0000`, and about 34 words
of read English per utterance.
"""
from __future__ import annotations

import os
from typing import Dict, List, Tuple

import numpy as np

UTTS = 281_241
SPEAKERS = 2_338
FRAME_SHIFT = 0.01  # 10 ms fbank frames
CONSONANTS = "b c d f g h j k l m n p r s t v w y z ch sh th st tr pl".split()
VOWELS = "a e i o u ea ou ai ee oo".split()


def durations(n: int, seed: int = 0) -> np.ndarray:
    """Seconds per utterance: 75% near the 14-16 s that LibriSpeech's segmentation aims at,
    24% shorter (sentence ends, chapter ends), 1% long (up to the 35 s cap); mean 12.3 s."""
    rng = np.random.default_rng(seed)
    kind = rng.random(n)
    d = np.where(kind < 0.75, rng.normal(13.8, 1.8, n), rng.uniform(1.0, 13.0, n))
    d = np.where(kind > 0.99, rng.uniform(17.0, 35.0, n), d)
    return np.round(np.clip(d, 1.0, 35.0), 2)


def num_frames(seconds: np.ndarray) -> np.ndarray:
    """Kaldi's frame count for 25 ms windows every 10 ms at 16 kHz (snip_edges=true)."""
    samples = np.round(seconds * 16000).astype(np.int64)
    return (samples - 400) // 160 + 1


def utt_ids(n: int, speakers: int = SPEAKERS, seed: int = 0) -> Tuple[List[str], List[str]]:
    """(utterance ids, speaker ids): speakers read 2-3 chapters of up to a few hundred
    utterances each, as LibriSpeech's `<speaker>-<chapter>-<index>`; C-sorted."""
    rng = np.random.default_rng(seed + 1)
    spk = np.sort(rng.choice(np.arange(14, 9000), speakers, replace=False))
    per_spk = np.full(speakers, n // speakers)
    per_spk[: n % speakers] += 1
    utts, owners = [], []
    chapter = 1000
    for s, count in zip(spk, per_spk):
        chapters = min(int(rng.integers(2, 4)), int(count))
        cut = np.sort(rng.choice(np.arange(1, count), chapters - 1, replace=False)) if chapters > 1 else []
        bounds = [0, *cut, count]
        for c in range(chapters):
            chapter += int(rng.integers(1, 40))
            for i in range(bounds[c + 1] - bounds[c]):
                utts.append(f"{s}-{chapter}-{i:04d}")
                owners.append(str(s))
    order = sorted(range(len(utts)), key=lambda i: utts[i])
    return [utts[i] for i in order], [owners[i] for i in order]


def vocabulary(size: int = 20000, seed: int = 0) -> List[str]:
    """Pronounceable upper-case pseudo-words (LibriSpeech's transcripts are upper case)."""
    rng = np.random.default_rng(seed + 2)
    words, seen = [], set()
    while len(words) < size:
        syl = int(rng.choice([1, 1, 2, 2, 2, 3, 3, 4]))
        w = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(syl))
        if rng.random() < 0.4:
            w += rng.choice(CONSONANTS)
        w = w.upper()
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def texts(seconds: np.ndarray, seed: int = 0, vocab_size: int = 20000) -> List[str]:
    """About 2.75 words per second (34 for a 12.3 s utterance), drawn with Zipf frequencies."""
    rng = np.random.default_rng(seed + 3)
    vocab = np.array(vocabulary(vocab_size, seed))
    p = 1.0 / np.arange(1, vocab_size + 1)
    p /= p.sum()
    counts = np.maximum(1, rng.poisson(2.75 * seconds))
    flat = rng.choice(vocab_size, int(counts.sum()), p=p)
    out, i = [], 0
    for c in counts:
        out.append(" ".join(vocab[flat[i:i + c]]))
        i += c
    return out


def write_data_dir(path: str, n: int = UTTS, speakers: int = SPEAKERS, seed: int = 0,
                   audio_root: str = "/corpora/LibriSpeech/train-960") -> Dict[str, int]:
    """A Kaldi data dir (wav.scp to flac files that need not exist, text, utt2spk, spk2utt,
    utt2dur, utt2num_frames); returns the frame counts by utterance."""
    os.makedirs(path, exist_ok=True)
    utts, spks = utt_ids(n, min(speakers, n), seed)
    dur = durations(len(utts), seed)
    frames = num_frames(dur)
    words = texts(dur, seed)

    def table(name: str, rows) -> None:
        with open(os.path.join(path, name), "w") as f:
            f.writelines(f"{k} {v}\n" for k, v in rows)

    # plain .flac paths, as the LibriSpeech data preparation writes them
    table("wav.scp", ((u, f"{audio_root}/{u.split('-')[0]}/{u.split('-')[1]}/{u}.flac") for u in utts))
    table("text", zip(utts, words))
    table("utt2spk", zip(utts, spks))
    table("utt2dur", zip(utts, (f"{d:.2f}" for d in dur)))
    table("utt2num_frames", zip(utts, frames))
    spk2utt: Dict[str, List[str]] = {}
    for u, s in zip(utts, spks):
        spk2utt.setdefault(s, []).append(u)
    table("spk2utt", ((s, " ".join(spk2utt[s])) for s in sorted(spk2utt)))
    return dict(zip(utts, (int(x) for x in frames)))
