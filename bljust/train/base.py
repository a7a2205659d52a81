"""What the two ASR methods (supervised CTC in trainer.py, BL-JUST in bilevel_trainer.py)
share on top of the training core (loop.py): features on the device, validation with CTC
loss and greedy CER, the round's model for keep-best and averaging, the self-description.

Both derive from ASRMethod and call its __init__; the loop, checkpoints, keep-best and
averaging are the core's. Nothing here imports a method, so the dispatcher (run.py) can
import both without a circle.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from bljust.data.batching import make_batches
from bljust.data.dataset import ASRDataset, collate
from bljust.decode.ctc import greedy_search
from bljust.nets.asr_model import ASRModel
from bljust.train import distributed as D
from bljust.train import experiment_folder as folder
from bljust.train.loop import LoopOptions, Method, TooManyBadSteps, TrainingLoop, autocast  # noqa: F401
from bljust.utils.plot import save_curves

logger = logging.getLogger(__name__)


def greedy_ctc(log_probs: torch.Tensor, lens: torch.Tensor, blank: int = 0) -> List[List[int]]:
    """Best path token ids per utterance (the decoder's greedy search, without scores)."""
    return [hyps[0].tokens for hyps in greedy_search(log_probs, lens, blank)]


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences (characters or token ids)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


def device_frontend(dataset: ASRDataset, device: torch.device) -> Optional[nn.Module]:
    """The fbank module that turns raw waveforms into features on the device, when the dataset sends them."""
    if not dataset.on_device:
        return None
    from bljust.nets.frontend import FbankFrontend

    logger.info("raw input: the loader sends waveforms, the fbank is computed on %s", device)
    return FbankFrontend(dataset.reader.fbank_opts).to(device)


class ASRMethod(Method):
    """Shared by the supervised and the BL-JUST method: the run's attributes, features on the
    device, validation (CTC loss and greedy CER), the round's model for keep-best and averaging,
    the self-description in the checkpoint, the loop options of the trainer section."""

    def __init__(self, config: Dict[str, Any], model: ASRModel, train_set: ASRDataset,
                 valid_set: Optional[ASRDataset], tokenizer: Any, dist: D.DistInfo, device: torch.device) -> None:
        self.conf, self.tc = config, config["trainer"]
        self.out = config["output_dir"]
        self.model, self.train_set, self.valid_set, self.tok = model, train_set, valid_set, tokenizer
        self.dist, self.device = dist, device
        self.seed = int(config["seed"])
        self.amp = str(self.tc.get("amp", "none"))
        self.frontend = device_frontend(train_set, device)

    def loop_options(self, total_steps: int) -> LoopOptions:
        tc = self.tc
        return LoopOptions(total_steps=total_steps, max_steps=int(tc.get("max_steps", 0)),
                           log_interval=int(tc.get("log_interval", 50)),
                           save_interval=int(tc.get("save_interval_steps", 0)),
                           max_bad_steps=int(tc.get("max_bad_steps", 100)),
                           keep_nbest=max(1, int(tc.get("keep_nbest_models", 5))),
                           nbest_average=max(1, int(tc.get("nbest_average", 5))))

    def features(self, b: Dict[str, Any], dataset: Optional[ASRDataset] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """A batch's features and their lengths on the device (fbank computed there for raw on-device input)."""
        x, lens = b["feats"].to(self.device, non_blocking=True), b["feat_lens"].to(self.device, non_blocking=True)
        if self.frontend is not None and (dataset or self.train_set).on_device:
            x, lens = self.frontend(x, lens)
        return x, lens

    def describe(self) -> Dict[str, Any]:
        return folder.self_description(self.conf)

    def snapshot(self) -> Dict[str, torch.Tensor]:
        return self.model.state_dict()

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        m = self.model
        m.eval()
        batches = make_batches(self.valid_set.lengths, int(self.conf["batching"]["batch_bins"]),
                               int(self.conf["batching"].get("max_batch_size", 0)))
        loss_sum, n, errs, chars = 0.0, 0, 0, 0
        for keys in batches:
            b = collate([self.valid_set[k] for k in keys])
            with autocast(self.device, self.amp):
                enc, elens = m.encode(*self.features(b, self.valid_set))
            loss = m.ctc_loss(enc, elens, b["ys"].to(self.device), b["y_lens"].to(self.device))
            loss_sum += float(loss)
            n += len(keys)
            if self.tc.get("valid_cer", True):
                for k, ids in zip(keys, greedy_ctc(m.ctc_log_probs(enc), elens, m.blank_id)):
                    ref = self.valid_set.texts[k]
                    errs += edit_distance(ref, self.tok.decode(ids))
                    chars += len(ref)
        m.train()
        out = {"valid_loss": loss_sum / max(1, n)}
        if chars:
            out["valid_cer"] = 100.0 * errs / chars
        return out

    def plot_loss_and_cer(self, loop: TrainingLoop, train: Dict[str, List[Tuple[float, float]]]) -> None:
        """images/loss.png (the given training curves and the validation loss) and images/cer.png."""
        img = os.path.join(self.out, "images")
        os.makedirs(img, exist_ok=True)
        save_curves(os.path.join(img, "loss.png"), {**train, "valid": loop.series("valid_loss", "history")},
                    "CTC loss", "step", "loss per utterance")
        cer = loop.series("valid_cer", "history")
        if cer:
            save_curves(os.path.join(img, "cer.png"), {"valid": cer}, "validation CER (greedy)", "step", "CER %")
