"""What a trained model was built from, and the checks that decoding uses the same.

Training records in config.yaml (`model_info`, saved next to the model) and in
checkpoint.pth: the token list's sha256 and size, the feature dimension, the CMVN type
and the sha256 of the CMVN statistics (whose mean / inverse std the model also holds).
Decoding with another token list, other features or other statistics is then an error
naming both sides, not a plausible-looking wrong result.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

from bljust.utils.fileio import file_digest

log = logging.getLogger(__name__)


class ModelMismatchError(ValueError):
    """The model and the files given to use it with were not made for each other."""


def sha256_file(path: str) -> str:
    return file_digest(path, "sha256")


def token_list_path(token_dir: str) -> str:
    return os.path.join(token_dir, "tokens.txt")


FEATS_CONF = "feats_conf.yaml"  # the feature stage's record of a dump folder's setup


def feats_conf(data_dir: Optional[str]) -> Optional[Dict[str, Any]]:
    """<data_dir>/feats_conf.yaml (fs, feat_dim, cmvn_type, fbank options), or None for older dumps."""
    import yaml

    path = os.path.join(data_dir, FEATS_CONF) if data_dir else ""
    if not path or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    if not isinstance(conf, dict):
        raise ValueError(f"{path}: expected a mapping of feature settings")
    return conf


def cmvn_type_of(data_dir: Optional[str], config: Optional[Dict[str, Any]] = None) -> str:
    """The CMVN type: the config's `cmvn_type`, else the one the feature stage recorded in the
    data dir's feats_conf.yaml, else "global" (the trainer's statistics inside the model)."""
    if config and config.get("cmvn_type"):
        return str(config["cmvn_type"])
    fc = feats_conf(data_dir)
    return str(fc.get("cmvn_type") or "global") if fc else "global"


def describe(input_dim: int, vocab_size: int, token_dir: Optional[str], cmvn: Optional[str],
             train_data_dir: Optional[str], config: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """model_info of a model trained on `train_data_dir` with these tokens and statistics."""
    tok = token_list_path(token_dir) if token_dir else ""
    info: Dict[str, Any] = {"input_dim": int(input_dim), "vocab_size": int(vocab_size)}
    if tok and os.path.isfile(tok):
        info["token_list"] = {"file": tok, "sha256": sha256_file(tok), "size": int(vocab_size)}
    info["features"] = {"feat_dim": int(input_dim), "cmvn_type": cmvn_type_of(train_data_dir, config),
                        "cmvn_file": cmvn, "cmvn_sha256": sha256_file(cmvn) if cmvn and os.path.isfile(cmvn) else None}
    fc = feats_conf(train_data_dir)
    if fc:
        info["features"].update({k: fc[k] for k in ("feature", "fs", "fbank") if k in fc})
    return info


def check_token_list(info: Dict[str, Any], token_dir: str, vocab_size: int, model_file: str) -> None:
    """The token list must be the model's: same size as its output layer and, when the model
    records it, the same content."""
    tok = token_list_path(token_dir)
    want = int(info.get("vocab_size", vocab_size))
    if want != vocab_size:
        raise ModelMismatchError(f"{tok} has {vocab_size} tokens but {model_file} outputs {want}: decode with the "
                                 f"token list the model was trained with")
    rec = info.get("token_list")
    if not rec:
        log.warning("%s records no token list fingerprint (trained before bljust recorded it): cannot check that %s "
                    "is the list it was trained with", model_file, tok)
        return
    got = sha256_file(tok)
    if got != rec.get("sha256"):
        raise ModelMismatchError(f"{tok} (sha256 {got[:12]}) is not the token list {model_file} was trained with "
                                 f"({rec.get('file')}, sha256 {str(rec.get('sha256'))[:12]}): the words would be "
                                 "wrong; pass that model's --token_dir")


def check_features(info: Dict[str, Any], data_dir: str, feat_dim: int, model_file: str,
                   cmvn: Optional[str] = None) -> None:
    """Features of `data_dir` (dimension `feat_dim`) and, if given, CMVN stats must match the model's."""
    want = int(info.get("input_dim", feat_dim))
    if want != feat_dim:
        raise ModelMismatchError(f"{data_dir}: features have {feat_dim} dimensions but {model_file} expects {want}: "
                                 "extract them with the training set's feature options")
    feats = info.get("features")
    if not feats:
        log.warning("%s records no feature configuration (trained before bljust recorded it): only the feature "
                    "dimension was checked", model_file)
        return
    fc = feats_conf(data_dir)
    if fc:
        where = os.path.join(data_dir, FEATS_CONF)
        theirs = {"cmvn_type": fc.get("cmvn_type", "global"), "fs": fc.get("fs"), "feature": fc.get("feature")}
        theirs.update({f"fbank.{k}": v for k, v in (fc.get("fbank") or {}).items()})
        ours = {"cmvn_type": feats.get("cmvn_type", "global"), "fs": feats.get("fs"), "feature": feats.get("feature")}
        ours.update({f"fbank.{k}": v for k, v in (feats.get("fbank") or {}).items()})
        diff = [f"{k} {theirs[k]!r} (model: {ours[k]!r})" for k in theirs
                if k in ours and ours[k] is not None and theirs[k] is not None and ours[k] != theirs[k]]
        if diff:
            raise ModelMismatchError(f"{where}: features made with {', '.join(diff[:4])}, not as {model_file} was "
                                     "trained: extract them with the training set's options")
    if cmvn:
        got = sha256_file(cmvn)
        if feats.get("cmvn_sha256") and got != feats["cmvn_sha256"]:
            raise ModelMismatchError(f"{cmvn} (sha256 {got[:12]}) is not the CMVN statistics {model_file} was trained "
                                     f"with ({feats.get('cmvn_file')}, sha256 {feats['cmvn_sha256'][:12]})")
