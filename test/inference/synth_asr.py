"""A tiny bljust model that really recognises something: "letters" are pure tones, words are
separated by silence. Built with the real pipeline: fbank features, global CMVN, a character
SentencePiece tokenizer and a small Conformer trained by bljust's trainer (about a minute of CPU).
"""
from __future__ import annotations

import os

import numpy as np

FS = 16000
LETTERS = "abcde"
# All below 4 kHz (8 kHz audio). Each word starts with a marker tone: SentencePiece's word
# boundary "▁" is then something the model hears, not something only the whole utterance tells.
FREQS = {"a": 350.0, "b": 650.0, "c": 1000.0, "d": 1450.0, "e": 2100.0, "▁": 3000.0}
FBANK = {"num_mel_bins": 40}  # not the default: the packed model must carry it


def random_text(rng: np.random.Generator, n_words: int) -> str:
    words = []
    for _ in range(n_words):
        w = ""
        for _ in range(int(rng.integers(1, 4))):
            w += str(rng.choice([c for c in LETTERS if not w or c != w[-1]]))
        words.append(w)
    return " ".join(words)


def synth(text: str, rng: np.random.Generator, fs: int = FS) -> np.ndarray:
    """int16-scale float32 samples: a 0.18-0.24 s tone per letter, 0.08 s gap, 0.3 s silence between words, each word led by a marker tone."""
    def sil(s):
        return np.zeros(int(s * fs))
    parts = [sil(0.2)]
    for wi, word in enumerate(text.split()):
        if wi:
            parts.append(sil(0.3))
        for li, c in enumerate("▁" + word):
            if li:
                parts.append(sil(0.08))
            t = np.arange(int(rng.uniform(0.18, 0.24) * fs)) / fs
            env = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
            parts.append(rng.uniform(1500, 4000) * env * np.sin(2 * np.pi * FREQS[c] * t + rng.uniform(0, 6.3)))
    parts.append(sil(0.2))
    x = np.concatenate(parts)
    return (x + rng.normal(0, 20.0, len(x))).astype(np.float32)


def write_data_dir(d: str, texts: dict, waves: dict) -> None:
    import kaldiio

    from bljust.features.fbank import Fbank, FbankOptions

    os.makedirs(d, exist_ok=True)
    fb = Fbank(FbankOptions.from_dict(FBANK))
    keys = sorted(texts)
    feats = fb.compute_many([waves[k] for k in keys], keys)
    with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
        for k, m in zip(keys, feats):
            w(k, m)
    for name, rows in (("text", texts), ("utt2num_frames", {k: m.shape[0] for k, m in zip(keys, feats)}),
                       ("utt2spk", {k: k for k in keys})):
        with open(os.path.join(d, name), "w") as f:
            f.writelines(f"{k} {rows[k]}\n" for k in keys)


def build_experiment(root: str, epochs: int = 14) -> str:
    """Writes <root>/exp/asr_tones (model.pth, config.yaml, RESULTS.md) and its data; returns the exp dir.

    The layout is a recipe's: config token_dir is relative to <root> (data/token_list/char).
    """
    from bljust.bin.train_tokenizer import train_tokenizer
    from bljust.features.cmvn import compute_stats, write_global
    from bljust.features.extract import write_feats_conf
    from bljust.features.fbank import FbankOptions
    from bljust.train.config import load_config
    from bljust.train.run import train

    rng = np.random.default_rng(0)
    for name, n in (("train", 400), ("dev", 24)):
        texts = {f"{name}{i:03d}": random_text(rng, int(rng.integers(1, 4))) for i in range(n)}
        waves = {k: synth(t, rng) for k, t in texts.items()}
        write_data_dir(os.path.join(root, "dump", name), texts, waves)
    # the feature setup, recorded as the feature stage does; training copies it into model_info
    write_feats_conf(os.path.join(root, "dump", "train"), FbankOptions.from_dict(FBANK), False, "global")
    write_global(os.path.join(root, "dump", "cmvn.ark"),
                 compute_stats(os.path.join(root, "dump", "train", "feats.scp"))["global"])
    tok = os.path.join(root, "data", "token_list", "char")
    train_tokenizer(os.path.join(root, "dump", "train", "text"), tok, token_type="char")
    exp = os.path.join(root, "exp", "asr_tones")
    conf = load_config(None, [])
    conf.update(train_data_dir=f"{root}/dump/train", valid_data_dir=f"{root}/dump/dev", token_dir="data/token_list/char",
                cmvn=f"{root}/dump/cmvn.ark", output_dir=exp, num_threads=1)
    conf["encoder"].update(d_model=64, num_heads=2, ffn_dim=128, num_layers=2, kernel_size=15, dropout=0.1)
    conf["specaug"].update(num_freq_masks=0, num_time_masks=0)
    conf["optim"].update(lr=0.004)
    conf["scheduler"].update(warmup_steps=100)
    conf["batching"].update(batch_bins=1500, max_batch_size=4)
    conf["trainer"].update(max_epoch=epochs, log_interval=100, keep_nbest_models=2, nbest_average=2)
    cwd = os.getcwd()
    os.chdir(root)  # the trainer reads token_dir as a recipe does: relative to the recipe folder
    try:
        train(conf)
    finally:
        os.chdir(cwd)
    with open(os.path.join(exp, "RESULTS.md"), "w") as f:
        f.write("# RESULTS\n\n## asr_tones\n\n### WER\n\n|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|\n"
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n|decode/dev|24|48|97.9|2.1|0.0|0.0|2.1|4.2|\n"
                "|decode/test|16|32|96.9|3.1|0.0|0.0|3.1|6.2|\n")
    return exp
