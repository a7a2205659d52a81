"""Starting an ASR training run: device and threads, data, model, and the method its `method`
key picks, run by the training core (loop.py).

This module sits above both methods (trainer.py: supervised, bilevel_trainer.py: BL-JUST)
so that neither imports the other; bljust.bin.train calls `train` here.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict

import humanfriendly
import torch

from bljust.data.dataset import ASRDataset
from bljust.nets.asr_model import build_asr_model
from bljust.nets.subsampling import min_input_frames
from bljust.train import distributed as D
from bljust.train import experiment_folder as folder
from bljust.train.config import ConfigError, save_config
from bljust.train.loop import TrainingLoop, setup_device
from bljust.train.trainer import SupervisedMethod
from bljust.utils import model_info

logger = logging.getLogger(__name__)


def train(config: Dict[str, Any], dist: D.DistInfo | None = None, tokenizer: Any = None, resume: bool = True) -> None:
    """Runs (or resumes) training as configured; writes everything under config['output_dir'].

    resume=False starts over in an output folder that holds an earlier run (its checkpoints
    and models are removed); with resume=True a folder whose run had other model or
    feature settings is refused before anything in it is touched.
    """
    dist = dist or D.DistInfo()
    use_cuda = int(config.get("ngpu", 0)) > 0
    check_device(config)
    if config["trainer"].get("deterministic", True):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    device = setup_device(config, dist)
    dist.backend = dist.backend or config.get("dist_backend")
    D.init(dist, use_cuda)
    try:
        _train(config, dist, tokenizer, device, resume)
    finally:
        D.cleanup(dist)


def check_device(config: Dict[str, Any]) -> None:
    ngpu = int(config.get("ngpu", 0))
    if ngpu > 0 and not torch.cuda.is_available():
        raise ConfigError(f"--ngpu {ngpu}, but torch sees no CUDA device on this machine: use --ngpu 0 to train "
                          "on CPU")
    if ngpu > 0 and torch.cuda.device_count() < ngpu:
        raise ConfigError(f"--ngpu {ngpu}, but only {torch.cuda.device_count()} CUDA device(s) are visible")


def _log_data_setup(config: Dict[str, Any], tokenizer: Any) -> None:
    """One line each: the feature setup of the training dump, and what the tokenizer turns into <unk>."""
    from bljust.features.extract import FEATS_CONF, read_feats_conf
    from bljust.text.coverage import report_coverage

    fc = read_feats_conf(config["train_data_dir"])
    if fc:
        logger.info("features: %s, %s dims at %s Hz, %s CMVN (%s)", fc.get("feature"), fc.get("feat_dim"),
                    fc.get("fs"), fc.get("cmvn_type"), os.path.join(config["train_data_dir"], FEATS_CONF))
    texts = [(f"{k.replace('_data_dir', '')} set {config[k]}", os.path.join(config[k], "text"))
             for k in ("train_data_dir", "valid_data_dir") if config.get(k)]
    if getattr(tokenizer, "sp", None) is not None:
        report_coverage(tokenizer.sp, [(n, t) for n, t in texts if os.path.isfile(t)])


def _train(config: Dict[str, Any], dist: D.DistInfo, tokenizer: Any, device: torch.device, resume: bool = True) -> None:
    for key in ("train_data_dir", "token_dir", "output_dir"):
        if not config.get(key) and not (key == "token_dir" and tokenizer is not None):
            raise ConfigError(f"--{key} is required")
    if config.get("method") == "bilevel" and not config.get("unlab_data_dir"):
        raise ConfigError("method bilevel needs --unlab_data_dir (unlabeled features)")
    if tokenizer is None:
        from bljust.text.tokenizer import Tokenizer

        tokenizer = Tokenizer.from_dir(config["token_dir"])
    bc = config["batching"]
    # too short for the subsampling front end: no output frame at all
    shortest = max(int(bc.get("min_frames", 0)), min_input_frames(int((config.get("encoder") or {}).get("subsampling", 4))))
    fe = config.get("frontend") or {}  # the schema checked it (type: fbank)
    on_device = bool(fe.get("on_device", False)) and not os.path.isfile(os.path.join(config["train_data_dir"], "feats.scp"))
    if fe.get("on_device") and not on_device:
        logger.info("frontend.on_device is set, but %s holds dumped features: it applies to raw input only",
                    config["train_data_dir"])
    train_set = ASRDataset(config["train_data_dir"], tokenizer, shortest, int(bc.get("max_frames", 0)),
                           on_device=on_device)
    valid_set = (ASRDataset(config["valid_data_dir"], tokenizer, shortest, on_device=on_device)
                 if config.get("valid_data_dir") else None)
    if dist.is_master:
        _log_data_setup(config, tokenizer)
    mean = istd = None
    if config.get("cmvn"):
        from bljust.features.cmvn import read_global_cmvn

        mean, istd = read_global_cmvn(config["cmvn"])
    else:
        logger.warning("no --cmvn given: features go into the model unnormalised")
    config["model_info"] = model_info.describe(train_set.feat_dim, int(tokenizer.vocab_size), config.get("token_dir"),
                                               config.get("cmvn"), config["train_data_dir"], config)
    method = config.get("method", "supervised")
    if method not in ("supervised", "bilevel"):
        raise ConfigError(f"unknown method '{method}' (supervised, bilevel)")
    if method == "bilevel" and not config.get("unlab_data_dir"):
        raise ConfigError("method: bilevel needs --unlab_data_dir (the unlabeled features, "
                          "e.g. dump/fbank/train_unlab)")
    earlier = folder.check_resume(config, resume)  # before anything in output_dir changes
    os.makedirs(config["output_dir"], exist_ok=True)
    if dist.is_master:
        if earlier and not resume:
            folder.start_over(config["output_dir"])
        save_config(config, os.path.join(config["output_dir"], "config.yaml"))
    D.barrier(dist)
    torch.manual_seed(int(config["seed"]))  # the same initial weights on every rank
    model = build_asr_model(config, train_set.feat_dim, int(tokenizer.vocab_size), mean, istd).to(device)
    nparam = sum(p.numel() for p in model.parameters())
    logger.info("model: %s parameters, %d train / %d valid utterances", humanfriendly.format_number(nparam),
                len(train_set), len(valid_set) if valid_set else 0)
    if method == "supervised":
        m = SupervisedMethod(config, model, train_set, valid_set, tokenizer, dist, device)
    else:
        from bljust.train.bilevel_trainer import BilevelMethod

        unlab_set = ASRDataset(config["unlab_data_dir"], None, shortest, int(bc.get("max_frames", 0)), labeled=False,
                               on_device=on_device)
        logger.info("%d unlabeled utterances from %s", len(unlab_set), config["unlab_data_dir"])
        m = BilevelMethod(config, model, train_set, unlab_set, valid_set, tokenizer, dist, device)
    TrainingLoop(config["output_dir"], m, int(config["seed"]), dist).run()
