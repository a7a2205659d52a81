"""Packed models: one archive per experiment that loads anywhere, and loading models for Speech2Text.

A packed model is a flat folder (or the same files in a .zip), the layout a model hub takes:
  model.safetensors  averaged weights (safetensors cannot carry code)
  config.yaml        the resolved training config
  tokens.txt, bpe.model   the token list and its SentencePiece model
  fbank.yaml         the fbank options the features were computed with (sample rate included;
                     from the config's model_info.features when training recorded them)
  cmvn.yaml          the global CMVN mean / inverse std (also buffers in the weights), for readers
  RESULTS.md         the experiment's scoring summary
  README.md          the model card
Nothing in it is unpickled: a pickle (.pth, .pt, .bin, .pkl, .ckpt) in an archive, or a
model.safetensors that is not safetensors, is refused with the file's name.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import shutil
import tempfile
import zipfile
from typing import Any, Dict, Optional, Tuple

import torch
import yaml

from bljust.features.fbank import FbankOptions
from bljust.utils.fileio import atomic_write


class ModelLoadError(Exception):
    """A model folder or archive that cannot be used; the message names the file (bljust.inference
    re-exports it: the loader lives here, below Speech2Text, so that neither imports the other)."""


log = logging.getLogger(__name__)

PACKED_FILES = ("model.safetensors", "config.yaml", "tokens.txt", "bpe.model", "fbank.yaml")
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".pkl", ".pickle", ".ckpt")


def _read_yaml(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            obj = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ModelLoadError(f"{path}: cannot read ({' '.join(str(e).split())})") from None
    if not isinstance(obj, dict):
        raise ModelLoadError(f"{path}: not a YAML mapping")
    return obj


def _build_model(config: Dict[str, Any], config_file: str) -> torch.nn.Module:
    from bljust.nets.asr_model import build_asr_model

    info = config.get("model_info") or {}
    if "input_dim" not in info or "vocab_size" not in info:
        raise ModelLoadError(f"{config_file}: no model_info.input_dim / vocab_size (not written by bljust.bin.train?)")
    return build_asr_model(config, int(info["input_dim"]), int(info["vocab_size"]))


def _load_state(model: torch.nn.Module, state: Dict[str, torch.Tensor], what: str) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelLoadError(f"{what} does not match its config.yaml: missing {missing[:5]}, unexpected {unexpected[:5]}")


def load_experiment_weights(model_file: str) -> Dict[str, torch.Tensor]:
    """The model state_dict of an experiment's model.pth (or a full checkpoint), never unpickling code."""
    try:
        obj = torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad or unsafe file
        raise ModelLoadError(f"{model_file}: cannot load as plain weights ({str(e).splitlines()[0][:200]})") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{model_file}: not a model state_dict")
    return obj


def check_safetensors(path: str) -> None:
    """Refuses a model.safetensors that is not one (e.g. a pickle put in its place)."""
    import json
    import struct

    with open(path, "rb") as f:
        head = f.read(8)
        size = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        ok = 2 <= size <= 100_000_000 and size + 8 <= os.path.getsize(path)
        if ok:
            try:
                ok = isinstance(json.loads(f.read(size)), dict)
            except ValueError:
                ok = False
    if not ok:
        raise ModelLoadError(f"{path}: not a safetensors file (refused: a packed model's weights are never unpickled)")


def _refuse_pickles(names, where: str) -> None:
    bad = sorted(n for n in names if n.lower().endswith(PICKLE_SUFFIXES))
    if bad:
        raise ModelLoadError(f"{os.path.join(where, bad[0])}: a pickle file in a packed model is refused "
                             "(packed weights are model.safetensors only)")


def load_packed_dir(d: str) -> Tuple[torch.nn.Module, Any, FbankOptions, Dict[str, Any]]:
    from safetensors.torch import load_file

    from bljust.text.tokenizer import Tokenizer

    _refuse_pickles(os.listdir(d), d)
    for name in PACKED_FILES:
        if not os.path.isfile(os.path.join(d, name)):
            raise ModelLoadError(f"{os.path.join(d, name)}: missing from the packed model")
    weights = os.path.join(d, "model.safetensors")
    check_safetensors(weights)
    config = _read_yaml(os.path.join(d, "config.yaml"))
    model = _build_model(config, os.path.join(d, "config.yaml"))
    _load_state(model, load_file(weights), weights)
    opts = FbankOptions.from_dict(_read_yaml(os.path.join(d, "fbank.yaml")))
    tokenizer = Tokenizer.from_dir(d)
    check_tokens(config, d, tokenizer.vocab_size, weights)
    return model, tokenizer, _checked_opts(opts, model, os.path.join(d, "fbank.yaml")), config


def _checked_opts(opts: FbankOptions, model: torch.nn.Module, what: str) -> FbankOptions:
    if opts.feat_dim != model.input_dim:
        raise ModelLoadError(f"{what}: fbank options give {opts.feat_dim}-dim features, the model takes "
                             f"{model.input_dim} (pass the fbank YAML the model was trained with: --fbank_conf)")
    return opts


def find_token_dir(exp_dir: str, config: Dict[str, Any], token_dir: Optional[str]) -> str:
    """The experiment's token list: --token_dir, else config token_dir (absolute, from here, or from the recipe)."""
    if token_dir:
        cands = [token_dir]
    else:
        td = config.get("token_dir")
        if not td:
            raise ModelLoadError(f"{os.path.join(exp_dir, 'config.yaml')}: no token_dir (pass --token_dir)")
        recipe = os.path.dirname(os.path.dirname(os.path.abspath(exp_dir)))
        cands = [td] if os.path.isabs(td) else [td, os.path.join(recipe, td)]
    for c in cands:
        if os.path.isfile(os.path.join(c, "tokens.txt")) and os.path.isfile(os.path.join(c, "bpe.model")):
            return c
    raise ModelLoadError(f"{exp_dir}: token list not found (looked for tokens.txt and bpe.model in "
                         f"{', '.join(cands)}; pass --token_dir)")


def recorded_features(config: Dict[str, Any]) -> Dict[str, Any]:
    """The feature setup training recorded in config.yaml (model_info.features): fs, fbank, cmvn_type."""
    return dict((config.get("model_info") or {}).get("features") or {})


def fbank_options(exp_dir: str, config: Dict[str, Any], fbank_conf: Optional[str], fs: Optional[int] = None
                  ) -> FbankOptions:
    """The model's fbank options: those its config.yaml records (model_info.features), else --fbank_conf,
    else the exp dir's fbank.yaml, else the defaults at fs (16 kHz). An --fbank_conf or --fs that
    contradicts the recorded setup is refused."""
    feats = recorded_features(config)
    recorded = feats.get("fbank") is not None or feats.get("fs") is not None
    path = fbank_conf or (os.path.join(exp_dir, "fbank.yaml") if os.path.isfile(os.path.join(exp_dir, "fbank.yaml"))
                          else None)
    given = dict(_read_yaml(path)) if path else {}
    conf = dict(feats.get("fbank") or {}) if recorded else given
    rate = conf.get("sample_rate") or feats.get("fs") or fs or given.get("sample_rate") or config.get("fs") or 16000
    conf["sample_rate"] = int(rate)
    try:
        opts = FbankOptions.from_dict(conf)
        where = os.path.join(exp_dir, "config.yaml")
        if recorded and fs and int(fs) != opts.sample_rate:
            raise ModelLoadError(f"--fs {fs}: the model's features are at {opts.sample_rate} Hz ({where} records it)")
        if recorded and fbank_conf:
            mine = FbankOptions.from_dict(dict(given, sample_rate=int(given.get("sample_rate") or opts.sample_rate)))
            diff = [f"{k} {v!r} (model: {getattr(opts, k)!r})" for k, v in dataclasses.asdict(mine).items()
                    if getattr(opts, k) != v]
            if diff:
                raise ModelLoadError(f"{fbank_conf}: {', '.join(diff[:4])}: not the features {where} records "
                                     "for the model")
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"{path or os.path.join(exp_dir, 'config.yaml')}: {e}") from None
    cmvn_type = feats.get("cmvn_type") or "global"
    if cmvn_type != "global":
        raise ModelLoadError(f"{os.path.join(exp_dir, 'config.yaml')}: the model was trained on features with "
                             f"cmvn_type {cmvn_type}; Speech2Text applies only the global CMVN held in the model")
    return opts


def check_tokens(config: Dict[str, Any], token_dir: str, vocab_size: int, model_file: str) -> None:
    """The token list must be the one training recorded (size and sha256, when recorded)."""
    from bljust.utils.model_info import ModelMismatchError, check_token_list

    try:
        check_token_list(config.get("model_info") or {}, token_dir, vocab_size, model_file)
    except ModelMismatchError as e:
        raise ModelLoadError(str(e)) from None


def load_experiment(exp_dir: str, token_dir: Optional[str] = None, fbank_conf: Optional[str] = None,
                    model_file: str = "model.pth") -> Tuple[torch.nn.Module, Any, FbankOptions, Dict[str, Any]]:
    """An experiment folder's model (model_file: a name in it, default the averaged model.pth)."""
    from bljust.text.tokenizer import Tokenizer

    model_file, config_file = os.path.join(exp_dir, model_file), os.path.join(exp_dir, "config.yaml")
    for f in (model_file, config_file):
        if not os.path.isfile(f):
            raise ModelLoadError(f"{f}: not found (an experiment folder holds model.pth and config.yaml)")
    config = _read_yaml(config_file)
    model = _build_model(config, config_file)
    _load_state(model, load_experiment_weights(model_file), model_file)
    opts = _checked_opts(fbank_options(exp_dir, config, fbank_conf), model, fbank_conf or exp_dir)
    tdir = find_token_dir(exp_dir, config, token_dir)
    tokenizer = Tokenizer.from_dir(tdir)
    check_tokens(config, tdir, tokenizer.vocab_size, model_file)
    return model, tokenizer, opts, config


def load_model_dir(path: str, token_dir: Optional[str] = None, fbank_conf: Optional[str] = None
                   ) -> Tuple[torch.nn.Module, Any, FbankOptions, Dict[str, Any]]:
    """(model, tokenizer, fbank options, config) from an exp dir, a packed folder or a packed .zip."""
    if os.path.isfile(path):
        if not zipfile.is_zipfile(path):
            raise ModelLoadError(f"{path}: not a packed model (.zip) nor a model folder")
        with zipfile.ZipFile(path) as z, tempfile.TemporaryDirectory(prefix="bljust_model_") as tmp:
            names = z.namelist()
            _refuse_pickles(names, path)
            flat = [n for n in names if not n.endswith("/")]
            if any("/" in n or n.startswith(".") for n in flat):
                raise ModelLoadError(f"{path}: a packed model is flat (no folders): found {flat[0]}")
            z.extractall(tmp)
            try:
                return load_packed_dir(tmp)
            except ModelLoadError as e:
                raise ModelLoadError(str(e).replace(tmp, path)) from None
    if not os.path.isdir(path):
        raise ModelLoadError(f"{path}: no such model folder or archive")
    if os.path.isfile(os.path.join(path, "model.safetensors")):
        return load_packed_dir(path)
    return load_experiment(path, token_dir, fbank_conf)


# -- packing --------------------------------------------------------------------------------------
def _results_lines(exp_dir: str) -> str:
    p = os.path.join(exp_dir, "RESULTS.md")
    return open(p, encoding="utf-8").read() if os.path.isfile(p) else ""


def wer_rows(results: str) -> list:
    """(dataset, WER) rows of the "### WER" tables of a RESULTS.md written by bljust.bin.make_results."""
    rows, metric, err_col = [], None, None
    for line in results.splitlines():
        if line.startswith("#"):
            metric, err_col = line.lstrip("#").strip().upper(), None
        elif line.startswith("|") and metric == "WER":
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] == "dataset" and "Err" in cells:
                err_col = cells.index("Err")
            elif err_col is not None and not set(cells[0]) <= set("-:"):
                try:
                    rows.append((cells[0], float(cells[err_col])))
                except (ValueError, IndexError):
                    pass
    return rows


def model_card(tag: str, config: Dict[str, Any], opts: FbankOptions, results: str, vocab: int) -> str:
    rows = wer_rows(results)
    wers = [w for name, w in rows if "test" in name] or [w for _, w in rows]
    enc = config.get("encoder") or {}
    method = "BL-JUST (bilevel joint unsupervised and supervised training)" if config.get("bilevel") else \
        "supervised CTC training"
    front = ["---", "language: en", "library_name: bljust", "license: other  # set before publishing",
             "tags:", "- automatic-speech-recognition", "- ctc", "- conformer", "- bljust"]
    if wers:
        front += ["model-index:", f"- name: {tag}", "  results:", "  - task:", "      type: automatic-speech-recognition",
                  "    metrics:", "    - type: wer", f"      value: {wers[0]}"]
    front.append("---")
    body = f"""
# {tag}

Conformer-CTC speech recognition model trained with [bljust](https://example.invalid/bljust) ({method}).

- Data: training set `{config.get('train_data_dir', '?')}`, validation set `{config.get('valid_data_dir', '?')}`.
- Model: Conformer, {enc.get('num_layers', '?')} layers, d_model {enc.get('d_model', '?')}, subsampling \
{enc.get('subsampling', 4)}, CTC over {vocab} tokens (`tokens.txt`, SentencePiece `bpe.model`).
- Features: Kaldi fbank, {opts.num_mel_bins} mel bins at {opts.sample_rate} Hz (`fbank.yaml`), global CMVN inside \
the model (`cmvn.yaml` lists it).

## Results

{results.strip() or '(no RESULTS.md in the experiment folder when it was packed)'}

## How to use

```python
from bljust import Speech2Text
asr = Speech2Text.from_pretrained("{tag}.zip")
print(asr(waveform, sample_rate))
```

```sh
python -m bljust.bin.transcribe --model {tag}.zip audio.wav
```

The weights are `model.safetensors`; the encoder loads into plain PyTorch without bljust
(see bljust's docs/using_a_model.md for the parameter names).
"""
    return "\n".join(front) + "\n" + body


def pack_experiment(exp_dir: str, out: str, token_dir: Optional[str] = None, fbank_conf: Optional[str] = None,
                    fs: Optional[int] = None, model_file: str = "model.pth") -> str:
    """Writes exp_dir's packed model to `out` (.zip; written under a temporary name, then renamed)."""
    from safetensors.torch import save_file

    model, tokenizer, _, config = load_experiment(exp_dir, token_dir, fbank_conf, model_file)
    opts = fbank_options(exp_dir, config, fbank_conf, fs)
    _checked_opts(opts, model, fbank_conf or exp_dir)
    tdir = find_token_dir(exp_dir, config, token_dir)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    tag = os.path.basename(os.path.abspath(exp_dir))
    with tempfile.TemporaryDirectory(prefix="bljust_pack_") as tmp:
        save_file(state, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt", "bljust_model": tag})
        with open(os.path.join(tmp, "config.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        for name in ("tokens.txt", "bpe.model"):
            shutil.copyfile(os.path.join(tdir, name), os.path.join(tmp, name))
        with open(os.path.join(tmp, "fbank.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(dataclasses.asdict(opts), f, sort_keys=False)
        with open(os.path.join(tmp, "cmvn.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump({"type": "global", "mean": [round(float(v), 6) for v in state["normalize.mean"]],
                            "istd": [round(float(v), 6) for v in state["normalize.istd"]]}, f, sort_keys=False)
        results = _results_lines(exp_dir)
        if results:
            shutil.copyfile(os.path.join(exp_dir, "RESULTS.md"), os.path.join(tmp, "RESULTS.md"))
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(model_card(tag, config, opts, results, tokenizer.vocab_size))
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name in sorted(os.listdir(tmp)):
                z.write(os.path.join(tmp, name), name)
        with atomic_write(out, "wb", encoding=None) as f:
            f.write(buf.getvalue())
    log.info("packed %s into %s (%d parameters, %s)", exp_dir, out, sum(v.numel() for v in state.values()),
             ", ".join(sorted(zipfile.ZipFile(out).namelist())))
    return out
