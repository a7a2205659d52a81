"""Decoding a Kaldi data directory with a trained CTC model, and merging split outputs.

Outputs (Kaldi text tables, C-sorted, each written atomically):
  text   utt -> words        token  utt -> space-separated tokens
  score  utt -> log-prob of the hypothesis (greedy: best path; beam: prefix total)
and with nbest > 1 also <k>best_recog/{text,token,score} for k = 1..nbest.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from bljust.data.dataset import FeatureReader, collate
from bljust.decode.ctc import ctc_decode
from bljust.utils import model_info
from bljust.utils.fileio import read_table, write_table

log = logging.getLogger(__name__)
OUTPUT_FILES = ("text", "token", "score")


def load_tokenizer(token_dir: str):
    from bljust.text.tokenizer import Tokenizer

    return Tokenizer.from_dir(token_dir)


def _fmt_ids(ids: Sequence[str], limit: int = 10) -> str:
    return " ".join(ids[:limit]) + (f" ... ({len(ids)} in all)" if len(ids) > limit else "")


def utterances_to_decode(data_dir: str, utt_list: Optional[str] = None, allow_missing: bool = False) -> Dict[str, str]:
    """utt -> feats.scp entry for every utterance of the utt list (default: <data_dir>/text,
    else feats.scp). An utterance without features is an error naming it, or with
    allow_missing a logged skip with a count."""
    reader = FeatureReader(data_dir)  # dumped (feats.scp) or raw (wav.scp + utt2num_samples)
    feats = reader.entries
    feats_scp = os.path.join(data_dir, "utt2num_samples" if reader.raw else "feats.scp")
    src = utt_list or os.path.join(data_dir, "text")
    if os.path.isfile(src):
        wanted = list(read_table(src, allow_empty_value=True))
    elif utt_list:
        raise FileNotFoundError(f"utterance list {utt_list} not found")
    else:
        wanted = list(feats)
    missing = [u for u in wanted if u not in feats]
    if missing:
        msg = f"{len(missing)} utterance(s) of {src} have no features in {feats_scp}: {_fmt_ids(missing)}"
        if not allow_missing:
            raise ValueError(msg + " (re-extract features, fix the data dir, or pass --allow_missing to skip them)")
        log.warning("skipping %s", msg)
    return {u: feats[u] for u in wanted if u in feats}


def decode_data_dir(
    model_file: str,
    data_dir: str,
    token_dir: str,
    output_dir: str,
    config_file: Optional[str] = None,
    decode_method: str = "greedy",
    beam_size: int = 10,
    batch_size: int = 16,
    nbest: int = 1,
    device: str = "cpu",
    utt_list: Optional[str] = None,
    allow_missing: bool = False,
    token_topk: Optional[int] = None,
    cmvn: Optional[str] = None,
) -> int:
    """Decodes every utterance; returns how many were decoded.

    The token list, the features' dimension and CMVN type and (if given) the CMVN
    statistics must be those the model was trained with (ModelMismatchError otherwise).
    Raw feature dirs (wav.scp + utt2num_samples) get their fbank computed here, as
    training computed it.
    """
    from bljust.nets.model_file import load_model_for_inference

    utts = utterances_to_decode(data_dir, utt_list, allow_missing)
    reader = FeatureReader(data_dir)
    model, config = load_model_for_inference(model_file, config_file, device=device)
    tokenizer = load_tokenizer(token_dir)
    info = (config or {}).get("model_info") or {}
    if info:
        model_info.check_token_list(info, token_dir, int(tokenizer.vocab_size), model_file)
        first = next(iter(utts.values()), None)
        if first is not None:
            model_info.check_features(info, data_dir, int(_load(reader, next(iter(utts)), first).shape[1]),
                                      model_file, cmvn)
    blank_id = int(getattr(tokenizer, "blank_id", 0))
    n2f = reader.lengths() if reader.raw or os.path.isfile(os.path.join(data_dir, "utt2num_frames")) else {}
    # Longest first so that padding is small and an out-of-memory shows up at once.
    order = sorted(utts, key=lambda u: -int(n2f.get(u, 0)))
    hyps: List[Dict[str, tuple]] = [dict() for _ in range(nbest)]
    t0, frames = time.time(), 0
    for i in range(0, len(order), batch_size):
        keys = order[i : i + batch_size]
        items = []
        for u in keys:
            items.append((u, _load(reader, u, utts[u]), []))
            if items[-1][1].ndim != 2 or items[-1][1].shape[1] != items[0][1].shape[1]:
                raise ValueError(f"utterance {u} ({utts[u]}): features of shape {items[-1][1].shape}, the others in "
                                 f"its batch have {items[0][1].shape[1]} dimensions")
        batch = collate(items)  # the training batches' padding
        x, lens = batch["feats"], batch["feat_lens"]
        with torch.inference_mode():
            enc, enc_lens = model.encode(x.to(device), lens.to(device))
            lp = model.ctc_log_probs(enc)
        out = ctc_decode(lp.float().cpu(), enc_lens.cpu(), decode_method, beam_size, nbest, blank_id, token_topk)
        for u, nb in zip(keys, out):
            for k in range(nbest):
                if k < len(nb):
                    ids = nb[k].tokens
                    hyps[k][u] = (tokenizer.decode(ids), " ".join(tokenizer.ids_to_tokens(ids)), nb[k].score)
        frames += int(lens.sum())
        if (i // batch_size) % 20 == 0 or i + batch_size >= len(order):
            el = time.time() - t0
            log.info("decoded %d/%d utterances, %.1f s of audio at 10 ms frames, RTF %.4f",
                     min(i + batch_size, len(order)), len(order), frames / 100, el / max(frames / 100, 1e-9))
    _write_outputs(output_dir, hyps[0])
    if nbest > 1:
        for k in range(nbest):
            _write_outputs(os.path.join(output_dir, f"{k + 1}best_recog"), hyps[k])
    log.info("wrote %s/{text,token,score} (%d utterances, method %s)", output_dir, len(hyps[0]), decode_method)
    return len(hyps[0])


def _load(reader, utt: str, entry: str) -> np.ndarray:
    try:
        return reader.load(utt)  # a raw folder's fbank is computed here, as training computed it
    except Exception as e:  # noqa: BLE001 - name the utterance whatever kaldiio or the audio reader raised
        raise ValueError(f"cannot read features of utterance {utt} ({entry}): {e}") from None


def _write_outputs(d: str, hyps: Dict[str, tuple]) -> None:
    os.makedirs(d, exist_ok=True)
    write_table(os.path.join(d, "text"), {u: h[0] for u, h in hyps.items()})
    write_table(os.path.join(d, "token"), {u: h[1] for u, h in hyps.items()})
    write_table(os.path.join(d, "score"), {u: f"{h[2]:.4f}" for u, h in hyps.items()})


def merge_outputs(part_dirs: Sequence[str], output_dir: str, data_dir: Optional[str] = None,
                  allow_missing: bool = False, files: Sequence[str] = OUTPUT_FILES) -> int:
    """Concatenates the split decoding outputs into output_dir (C-sorted).

    Every part must have every file; an utterance decoded twice is an error; with
    data_dir, every utterance of its text (else feats.scp) must be present
    (allow_missing: utterances absent from feats.scp are a logged, counted skip).
    nbest subdirectories (<k>best_recog) present in all parts are merged too.
    """
    if not part_dirs:
        raise ValueError("no decoding outputs to merge")
    subdirs = [""]
    subdirs += sorted(s for s in os.listdir(part_dirs[0]) if s.endswith("best_recog")
                      and all(os.path.isdir(os.path.join(p, s)) for p in part_dirs))
    n = 0
    for sub in subdirs:
        for name in files:
            merged: Dict[str, str] = {}
            for p in part_dirs:
                path = os.path.join(p, sub, name)
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"{path} is missing: did that decoding job fail? (see its log)")
                for u, v in read_table(path, allow_empty_value=True).items():
                    if u in merged:
                        raise ValueError(f"utterance {u} is in more than one part ({path})")
                    merged[u] = v
            if data_dir:
                _check_complete(merged, data_dir, allow_missing, os.path.join(sub, name))
            write_table(os.path.join(output_dir, sub, name), merged)
            n = len(merged) if not sub else n
    log.info("merged %d parts into %s (%d utterances)", len(part_dirs), output_dir, n)
    return n


def _check_complete(merged: Dict[str, str], data_dir: str, allow_missing: bool, what: str) -> None:
    expected = utterances_to_decode(data_dir, None, allow_missing=True) if allow_missing else None
    if expected is None:
        text = os.path.join(data_dir, "text")
        expected = read_table(text, allow_empty_value=True) if os.path.isfile(text) else \
            utterances_to_decode(data_dir, None)
    lost = [u for u in expected if u not in merged]
    if lost:
        raise ValueError(f"{len(lost)} utterance(s) of {data_dir} are not in the merged {what}: {_fmt_ids(lost)}")
    extra = [u for u in merged if u not in expected]
    if extra:
        raise ValueError(f"{len(extra)} decoded utterance(s) are not in {data_dir}: {_fmt_ids(extra)}")

