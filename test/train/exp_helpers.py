"""A tiny corpus with a real token list and CMVN, and finished experiments trained by
bljust.bin.train on it, for the tests of what an experiment folder protects."""
from __future__ import annotations

import os
import pathlib
import pickle
import shutil

from train_synth import make_data_dir

from bljust.bin import train as train_bin
from bljust.bin import train_tokenizer
from bljust.features import cmvn as cmvn_lib

TINY = ["--encoder.d_model", "32", "--encoder.num_heads", "2", "--encoder.ffn_dim", "64", "--encoder.num_layers", "1",
        "--encoder.kernel_size", "3", "--batching.batch_bins", "400",
        "--batching.max_batch_size", "0", "--trainer.log_interval", "1",
        "--trainer.keep_nbest_models", "2", "--trainer.nbest_average", "2", "--num_threads", "1"]
BILEVEL = ["--method", "bilevel", "--unsup.name", "cpc", "--unsup.num_steps", "2", "--unsup.num_negatives", "4",
           "--unsup.proj_dim", "8", "--bilevel.n1", "1", "--bilevel.n2", "2", "--bilevel.n3", "1",
           "--bilevel.valid_interval", "2"]


def make_corpus(root: str) -> dict:
    """train/dev/unlab feature dirs (20-dim), a char token list and global CMVN stats."""
    c = {"root": root, "train": make_data_dir(f"{root}/train", 12), "dev": make_data_dir(f"{root}/dev", 4, seed=1),
         "unlab": make_data_dir(f"{root}/unlab", 8, seed=2), "tok": f"{root}/tok", "cmvn": f"{root}/cmvn.ark"}
    assert train_tokenizer.main(["--text", f"{root}/train/text", "--out_dir", c["tok"], "--token_type", "char"]) == 0
    cmvn_lib.write_global(c["cmvn"], cmvn_lib.compute_stats(f"{root}/train/feats.scp")["global"])
    return c


def train_args(c: dict, out: str, *extra: str, bilevel: bool = False, unlab: bool = True) -> list:
    args = ["--train_data_dir", c["train"], "--valid_data_dir", c["dev"], "--token_dir", c["tok"],
            "--cmvn", c["cmvn"], "--output_dir", out, *TINY]
    if bilevel:  # (max_epoch and scheduler are the supervised trainer's)
        args += (["--unlab_data_dir", c["unlab"]] if unlab else []) + BILEVEL
    else:
        args += ["--trainer.max_epoch", "2", "--scheduler.warmup_steps", "5"]
    return args + list(extra)


def train(c: dict, out: str, *extra: str, bilevel: bool = False, unlab: bool = True) -> int:
    return train_bin.main(train_args(c, out, *extra, bilevel=bilevel, unlab=unlab))


def copy_exp(src: str, dst: str) -> str:
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    return dst


class Payload:
    """Unpickling this creates `marker`: what a hostile checkpoint would do instead."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def write_hostile(path: str, marker: str, like: dict | None = None) -> str:
    """A torch file (zip format, as torch.save writes) holding `like` (e.g. a valid state dict)
    plus an object whose unpickling runs code."""
    import torch

    obj = dict(like or {})
    obj["payload"] = Payload(marker)
    if os.path.lexists(path):
        os.unlink(path)
    torch.save(obj, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    return path
