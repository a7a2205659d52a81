"""The training configuration schema: every section of every training entry point.

Each section is a dataclass: its fields are the keys, their annotations the types
and their defaults the defaults; `metadata["help"]` says what a key means (docs/config.md
is generated from it). Where a library class already defines the defaults (the PBGD
rule, the lower-level losses, the LASER loss, fbank, the SUPERB heads) the section is
derived from that class, so every default is written once.

Two kinds of selectors make a key depend on a choice:
- a section with ``SELECTOR = "name"`` (optimisers, schedulers, lower-level losses) only
  accepts the keys of the chosen name; ``metadata["only"]`` lists the names that read a key;
- ``SELECTOR = "method"`` (the top level and `trainer` of bljust.bin.train) marks keys
  that one training method reads and the other ignores; setting an ignored key is an error.

bljust.train.config loads YAML + command-line overrides against these classes.
"""
from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Literal, Optional, Tuple, Union

from bljust.data.pairs import PairMaker
from bljust.features.fbank import FbankOptions
from bljust.losses.bestrq import BestRQLoss
from bljust.losses.cpc import CPCLoss
from bljust.losses.laser import LaserLoss
from bljust.losses.laser_lower import LaserLowerLoss
from bljust.nets.specaug import SpecAugment
from bljust.nets.superb import SuperbModel
from bljust.train.bilevel import GAMMA_SCHEDULES, PENALTY_REFS, PBGDConfig

SUPERVISED, BILEVEL = "supervised", "bilevel"


def key(default: Any, help: str, only: Optional[Tuple[str, ...]] = None) -> Any:
    """A config key: its default (a section instance is copied per use), meaning and users."""
    md: Dict[str, Any] = {"help": help}
    if only:
        md["only"] = frozenset(only)
    if dataclasses.is_dataclass(default) or isinstance(default, (list, dict)):
        import copy

        return field(default_factory=lambda: copy.deepcopy(default), metadata=md)
    return field(default=default, metadata=md)


def _signature_fields(cls: type, skip: Tuple[str, ...], doc: str,
                      only: Optional[Dict[str, Tuple[str, ...]]] = None,
                      helps: Optional[Dict[str, str]] = None) -> List[Tuple[str, Any, Any]]:
    """(name, type, field) for the keyword arguments of cls.__init__: its defaults stay the only ones
    (`helps`: what a key means, where "argument of <doc>" says too little)."""
    hints = typing.get_type_hints(cls.__init__)
    out = []
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in skip or p.default is inspect.Parameter.empty:
            continue
        out.append((name, hints.get(name, Any), key(p.default, (helps or {}).get(name, f"argument of {doc}"),
                                                     (only or {}).get(name))))
    return out


def _make(name: str, fields_: List[Tuple[str, Any, Any]], doc: str = "") -> type:
    cls = dataclasses.make_dataclass(name, fields_)
    cls.__module__, cls.__doc__ = __name__, doc or None
    return cls


# ------------------------------------------------------------------ shared sections
@dataclass
class OptimConfig:
    SELECTOR: ClassVar[str] = "name"
    name: Literal["adam", "adamw", "sgd"] = key("adamw", "optimiser (torch.optim.Adam, AdamW or SGD)")
    lr: float = key(1.0e-3, "peak learning rate (the schedule multiplies it)")
    weight_decay: Optional[float] = key(None, "weight decay; unset: torch's default (adam, sgd 0; adamw 0.01)")
    betas: Optional[Tuple[float, float]] = key(None, "Adam betas; unset: torch's (0.9, 0.999)", ("adam", "adamw"))
    eps: Optional[float] = key(None, "Adam epsilon; unset: torch's 1e-8", ("adam", "adamw"))
    fused: Optional[bool] = key(None, "one fused kernel per Adam update; unset: true when every parameter is on "
                                      "a GPU", ("adam", "adamw"))
    momentum: Optional[float] = key(None, "SGD momentum; unset: 0", ("sgd",))
    nesterov: Optional[bool] = key(None, "SGD Nesterov momentum; unset: false", ("sgd",))


_WARMUP = ("warmuplr", "noam", "linear", "warmup_linear", "cosine", "warmup_cosine")


@dataclass
class SchedulerConfig:
    SELECTOR: ClassVar[str] = "name"
    name: Literal["warmuplr", "noam", "linear", "warmup_linear", "cosine", "warmup_cosine", "constant", "none"] = key(
        "warmuplr", "learning-rate schedule: warmuplr/noam (linear warm-up, inverse-sqrt decay), linear or cosine "
        "(warm-up, then decay to final_lr_ratio at the schedule's end), constant/none")
    warmup_steps: int = key(25000, "optimiser steps of linear warm-up to the peak lr", _WARMUP)
    final_lr_ratio: float = key(0.0, "lr at the schedule's end, as a fraction of the peak",
                                ("linear", "warmup_linear", "cosine", "warmup_cosine"))
    restarts: List[float] = key([], "warm restarts: fractions of the schedule's steps (increasing, in (0, 1)) "
                                    "where it starts again from its warm-up, each cycle as long as the "
                                    "stretch up to the next restart (SGDR); []: none", _WARMUP)


@dataclass
class UpstreamConfig:
    arch: Union[None, str, Dict[str, Any]] = key(
        None, "upstream architecture: a name (hubert_base, wavlm_base, ...), a YAML file of torchaudio builder "
        "arguments (+ kind), or that mapping; unset: taken from the checkpoint")
    ckpt: Optional[str] = key(None, "upstream checkpoint (fairseq, Hugging Face, torchaudio or bljust layout); "
                                    "unset: random weights from arch")
    trust_checkpoint: bool = key(False, "allow a checkpoint that needs full unpickling (only for files you trust)")


# ------------------------------------------------------------------ bljust.bin.train (supervised and bilevel)
@dataclass
class EncoderConfig:
    impl: Literal["bljust", "torchaudio"] = key("bljust", "Conformer implementation: bljust's or "
                                                          "torchaudio.models.Conformer")
    d_model: int = key(144, "attention dimension")
    num_heads: int = key(4, "attention heads")
    ffn_dim: int = key(576, "feed-forward hidden size")
    num_layers: int = key(4, "Conformer blocks")
    kernel_size: int = key(15, "depthwise convolution kernel")
    dropout: float = key(0.1, "dropout rate")
    subsampling: int = key(4, "frame-rate reduction of the convolutional front end")
    conv_norm: Literal["layer_norm", "batch_norm"] = key("layer_norm", "normalisation in the convolution module")


SpecAugConfig = _make("SpecAugConfig", _signature_fields(SpecAugment, (), "SpecAugment", helps={
    "num_freq_masks": "frequency masks per utterance",
    "freq_mask_width": "widest frequency mask (bins)",
    "num_time_masks": "time masks per utterance",
    "time_mask_width": "widest time mask (frames)",
    "time_mask_ratio": "a time mask is also at most this fraction of the utterance",
    "time_warp": "time-warp window (frames); 0: off"}), "bljust.nets.specaug.SpecAugment's arguments")


@dataclass
class CTCConfig:
    zero_infinity: bool = key(True, "zero infinite CTC losses (targets longer than the encoder output)")


@dataclass
class FrontendConfig:
    type: Literal["fbank"] = key("fbank", "the features computed from raw input (asr.sh --feats_type raw): "
                                          "Kaldi fbank, with the options stage 3 recorded in the data dir's feats_conf.yaml")
    on_device: bool = key(False, "raw input: compute the fbank on the training device (the loader sends "
                                 "waveforms) instead of in the loader workers; dumped features ignore it")


@dataclass
class BatchingConfig:
    batch_bins: int = key(20000, "a batch holds at most this many frames x utterances (padded)")
    max_batch_size: int = key(256, "at most this many utterances per batch; 0: no limit")
    min_frames: int = key(0, "drop utterances shorter than this (the front end's minimum always applies)")
    max_frames: int = key(0, "drop utterances longer than this; 0: no limit")


@dataclass
class UnlabBatchingConfig:
    batch_bins: Optional[int] = key(None, "as batching.batch_bins, for the unlabeled stream; unset: batching's")
    max_batch_size: Optional[int] = key(None, "as batching.max_batch_size, for the unlabeled stream; "
                                              "unset: batching's")


@dataclass
class TrainerConfig:
    SELECTOR: ClassVar[str] = "method"
    max_epoch: int = key(10, "epochs of the supervised trainer", (SUPERVISED,))
    accum_grad: int = key(1, "batches per optimiser step (gradient accumulation)", (SUPERVISED,))
    grad_clip: float = key(5.0, "clip the gradient norm at this value (every update of every level); 0: off")
    amp: Literal["none", "bf16", "fp16"] = key("none", "mixed precision on GPU (bilevel: none or bf16); "
                                                       "without a GPU training runs in fp32 and says so")
    log_interval: int = key(50, "optimiser steps between log lines")
    save_interval_steps: int = key(0, "optimiser steps between checkpoints inside an epoch/round; 0: at its end")
    keep_nbest_models: int = key(5, "keep the best K epoch/round models (by validation loss and CER)")
    nbest_average: int = key(5, "average the best K into model.pth")
    max_bad_steps: int = key(100, "give up after this many non-finite losses or gradients")
    num_workers: int = key(0, "DataLoader worker processes", (SUPERVISED,))
    deterministic: bool = key(True, "deterministic algorithms (bit-exact resume); false: faster GPU kernels")
    valid_cer: bool = key(True, "greedy-decode the validation set for a CER each round")
    max_steps: int = key(0, "stop after this many optimiser steps (the schedule is unchanged; tests, "
                            "benchmarks); 0: run the whole schedule")


_PBGD_HELP = {
    "n1": "explore phase: steps of (theta, eta) on the unsupervised loss g",
    "n2": "joint phase: steps of K lower-level updates + one penalised upper-level update",
    "n3": "fine-tune phase: steps of (theta, phi) on the supervised loss f",
    "k": "lower-level steps per joint step (0: multitask)",
    "gamma0": "penalty weight at the start of the joint phase",
    "gamma_max": "penalty weight at its end",
    "gamma_schedule": "gamma from gamma0 to gamma_max: " + ", ".join(GAMMA_SCHEDULES) + " (constant: gamma_max)",
    "normalize": "scale the upper-level direction by min(1, 1/gamma)",
    "reuse_lower_grad": "the upper level reuses the last lower-level gradient of g (one encoder pass fewer)",
    "penalty_ref": "reference v-hat of the logged penalty g - v-hat: " + ", ".join(PENALTY_REFS),
    "lower_level": "false: the schedule control (needs k 0, gamma0 0, gamma_max 0): no unsupervised loss is "
                   "evaluated, the explore phase is dropped, joint steps are supervised steps of optim_ul",
}
_PBGD_CHOICES = {"gamma_schedule": GAMMA_SCHEDULES, "penalty_ref": PENALTY_REFS}


def _pbgd_fields() -> List[Tuple[str, Any, Any]]:
    """The PBGD rule's own settings, with its defaults (grad_clip comes from trainer.grad_clip)."""
    hints = typing.get_type_hints(PBGDConfig)
    out = []
    for f in dataclasses.fields(PBGDConfig):
        if f.name == "grad_clip":
            continue
        tp = Literal[_PBGD_CHOICES[f.name]] if f.name in _PBGD_CHOICES else hints[f.name]
        out.append((f.name, tp, key(f.default, _PBGD_HELP[f.name])))
    return out


BilevelConfig = _make("BilevelConfig", _pbgd_fields() + [
    ("n1_epochs", Optional[float], key(None, "explore length in epochs of the unlabeled stream (overrides n1)")),
    ("n2_epochs", Optional[float], key(None, "joint length in epochs of the labeled stream (overrides n2)")),
    ("n3_epochs", Optional[float], key(None, "fine-tune length in epochs of the labeled stream (overrides n3)")),
    ("budget_passes", Optional[float], key(None, "a budget of encoder passes split by budget_fractions "
                                                 "(overrides the steps and epochs)")),
    ("budget_fractions", Tuple[float, float, float], key([0.25, 0.5, 0.25], "shares of budget_passes for the "
                                                                            "three phases")),
    ("valid_interval", int, key(0, "steps between validation rounds; 0: one labeled epoch")),
], "The PBGD schedule (bljust.train.bilevel.PBGDConfig) and how its phase lengths are given.")

UNSUP_LOSSES: Dict[str, Tuple[type, Tuple[str, ...]]] = {
    # name: (loss class, constructor arguments bljust supplies)
    "cpc": (CPCLoss, ("dim",)),
    "bestrq": (BestRQLoss, ("dim", "input_dim", "stack")),
    "laser": (LaserLowerLoss, ("dim",)),
}


def _unsup_class() -> type:
    """One field per argument of any lower-level loss; a loss's own default fills what is unset."""
    merged: Dict[str, Tuple[Any, set]] = {}
    defaults: Dict[str, Dict[str, Any]] = {}
    for name, (cls, skip) in UNSUP_LOSSES.items():
        defaults[name] = {}
        for arg, tp, fld in _signature_fields(cls, skip, cls.__name__):
            merged.setdefault(arg, (tp, set()))[1].add(name)
            defaults[name][arg] = fld.default if fld.default is not dataclasses.MISSING else fld.default_factory()
    fields_ = [("name", Literal[tuple(UNSUP_LOSSES)], key("cpc", "the lower-level loss g: " + ", ".join(
        f"{n} ({c.__module__}.{c.__name__})" for n, (c, _) in UNSUP_LOSSES.items())))]
    for arg, (tp, users) in merged.items():
        shown = ", ".join(f"{u} {defaults[u][arg]!r}" for u in sorted(users))
        fields_.append((arg, Optional[tp], key(None, f"argument of the {'/'.join(sorted(users))} loss; "
                                                     f"unset: its default ({shown})", tuple(sorted(users)))))
    cls = _make("UnsupConfig", fields_)
    cls.SELECTOR = "name"
    cls.VARIANT_DEFAULTS = defaults
    return cls


UnsupConfig = _unsup_class()


@dataclass
class TrainConfig:
    """bljust.bin.train: supervised CTC training and the bilevel family (BL-JUST, PT+FT, multitask, ...)."""
    SELECTOR: ClassVar[str] = "method"
    method: Literal["supervised", "bilevel"] = key(SUPERVISED, "training method: supervised CTC, or bilevel "
                                                               "(PBGD: BL-JUST and its baselines as settings)")
    train_data_dir: Optional[str] = key(None, "labeled training features (a data dir with feats.scp and text)")
    valid_data_dir: Optional[str] = key(None, "validation features")
    unlab_data_dir: Optional[str] = key(None, "unlabeled features (bilevel; the supervised trainer does not read "
                                              "them, recipes pass them to every run)")
    token_dir: Optional[str] = key(None, "token list folder (tokens.txt and the tokenizer model)")
    cmvn: Optional[str] = key(None, "global CMVN statistics (cmvn.ark)")
    output_dir: Optional[str] = key(None, "experiment folder")
    ngpu: int = key(0, "GPUs (> 1: one process per GPU on this node)")
    num_nodes: int = key(1, "nodes (> 1: started by srun or torchrun on every node)")
    world_size: int = key(1, "processes on CPU (with dist_backend gloo)")
    dist_backend: Optional[Literal["nccl", "gloo"]] = key(None, "torch.distributed backend; unset: nccl on GPU, "
                                                                "gloo on CPU")
    seed: int = key(0, "random seed")
    num_threads: int = key(0, "CPU threads per process; 0: the CPU cores / local processes, < 0: torch's default")
    label: Optional[str] = key(None, "the name comparison tables give this run; unset: its folder's name")
    variant: Optional[str] = key(None, "a sweep point's overrides (asr.sh stage 9), shown after the label")
    encoder: EncoderConfig = key(EncoderConfig(), "the Conformer encoder")
    specaug: Optional[SpecAugConfig] = key(SpecAugConfig(), "SpecAugment; null: off")
    ctc: CTCConfig = key(CTCConfig(), "the CTC loss")
    frontend: FrontendConfig = key(FrontendConfig(), "where the fbank of raw input is computed")
    optim: OptimConfig = key(OptimConfig(weight_decay=1.0e-6), "the supervised optimiser", (SUPERVISED,))
    scheduler: SchedulerConfig = key(SchedulerConfig(warmup_steps=1000), "the supervised lr schedule", (SUPERVISED,))
    unsup: UnsupConfig = key(UnsupConfig(), "the lower-level (unsupervised) loss and its options", (BILEVEL,))
    bilevel: BilevelConfig = key(BilevelConfig(), "the bilevel schedule", (BILEVEL,))
    optim_ll: OptimConfig = key(OptimConfig(weight_decay=1.0e-6), "lower-level optimiser (rate rho)", (BILEVEL,))
    optim_ul: OptimConfig = key(OptimConfig(weight_decay=1.0e-6), "upper-level optimiser (rate alpha)", (BILEVEL,))
    optim_ft: OptimConfig = key(OptimConfig(lr=5.0e-4, weight_decay=1.0e-6), "fine-tune optimiser (rate tau)",
                                (BILEVEL,))
    scheduler_ll: SchedulerConfig = key(SchedulerConfig(name="constant"), "lower-level lr schedule", (BILEVEL,))
    scheduler_ul: SchedulerConfig = key(SchedulerConfig(name="constant"), "upper-level lr schedule", (BILEVEL,))
    scheduler_ft: SchedulerConfig = key(SchedulerConfig(name="constant"), "fine-tune lr schedule", (BILEVEL,))
    batching: BatchingConfig = key(BatchingConfig(), "batches of the labeled set")
    unlab_batching: UnlabBatchingConfig = key(UnlabBatchingConfig(), "batches of the unlabeled stream", (BILEVEL,))
    trainer: TrainerConfig = key(TrainerConfig(), "the training loop")
    model_info: Optional[Dict[str, int]] = key(None, "written by training (input_dim, vocab_size); do not set")


# ------------------------------------------------------------------ the upstream methods' shared keys
def _loop_section(name: str, max_updates: int, grad_clip: float, log_interval: int,
                  more: Tuple[Tuple[str, Any, Any], ...] = ()) -> type:
    """The `trainer:` section of an upstream method: the training core's keys (defaults per
    method) and the method's own."""
    return _make(name, [
        ("max_updates", int, key(max_updates, "optimiser updates: the schedule's length")),
        ("grad_clip", float, key(grad_clip, "clip the gradient norm; 0: off")),
        ("log_interval", int, key(log_interval, "updates between log lines")),
        *more,
        ("max_steps", int, key(0, "stop after this many updates (the schedule keeps max_updates; tests); 0: run all")),
    ])


@dataclass
class UpstreamRunConfig:
    """What every upstream method's top level has besides its sections."""
    output_dir: Optional[str] = key(None, "experiment folder")
    seed: int = key(0, "random seed")
    ngpu: int = key(0, "GPUs (0 or 1)")
    num_threads: int = key(0, "CPU threads; 0: the cores this process may use")


# ------------------------------------------------------------------ bljust.bin.ssft (LASER fine-tuning)
@dataclass
class SSFTUpstreamConfig(UpstreamConfig):
    representation_layer: int = key(-1, "the layer LASER trains on (-1: the last)")
    train_last: int = key(2, "train the last N transformer layers; the rest stays frozen")


SSFTTrainerConfig = _loop_section("SSFTTrainerConfig", 3600, 1.0, 10, (
    ("accum_grad", int, key(8, "micro-steps per update")),
    ("batch_pairs", int, key(1, "utterance pairs per micro-step")),
    ("save_interval", int, key(100, "updates between checkpoints")),
    ("upstream_interval", int, key(0, "also write the upstream as upstream.<update>.pth every N updates (a curve "
                                      "over fine-tuning); 0: only upstream.pth at the end")),
    ("max_seconds", float, key(0.0, "random crop of longer utterances (CPU recipes); 0: whole utterances"))))


LaserLossConfig = _make("LaserLossConfig", _signature_fields(
    LaserLoss, (), "bljust.losses.laser.LaserLoss (alpha: IDM weight, sigma: frame distance beyond which frames "
                   "are pushed apart, lam: margin, gamma: soft-DTW smoothing, bandwidth: Sakoe-Chiba band)"))
PairsConfig = _make("PairsConfig", _signature_fields(
    PairMaker, ("seed", "max_den"), "bljust.data.pairs.PairMaker (speeds: a preset name or a list of factors, "
                                    "semitones: pitch-shift range)"))


@dataclass
class SSFTConfig(UpstreamRunConfig):
    """bljust.bin.ssft: LASER self-supervised fine-tuning of a HuBERT / WavLM upstream."""
    train_data_dir: Optional[str] = key(None, "audio data dir (wav.scp)")
    upstream: SSFTUpstreamConfig = key(SSFTUpstreamConfig(), "the upstream to fine-tune")
    head_dim: int = key(256, "LASER head output dimension")
    loss: LaserLossConfig = key(LaserLossConfig(), "the LASER loss")  # type: ignore[valid-type]
    pairs: PairsConfig = key(PairsConfig(), "the (x, x') pair maker")  # type: ignore[valid-type]
    optim: OptimConfig = key(OptimConfig(lr=2.0e-5, weight_decay=0.01), "optimiser")
    scheduler: SchedulerConfig = key(SchedulerConfig(name="linear", warmup_steps=1000), "lr schedule")
    trainer: SSFTTrainerConfig = key(SSFTTrainerConfig(), "the training loop")


# ------------------------------------------------------------------ bljust.bin.train_superb
SuperbModelConfig = _make("SuperbModelConfig", _signature_fields(
    SuperbModel, ("upstream", "task", "vocab_size", "blank_id"), "bljust.nets.superb.SuperbModel (proj_dim unset: "
    "1024 for asr, 256 for pr; the lstm keys and dropout: asr only)",
    only={"lstm_dim": ("asr",), "lstm_layers": ("asr",), "dropout": ("asr",)}))
SuperbModelConfig.SELECTOR = "task"


@dataclass
class SuperbBatchingConfig:
    max_samples: int = key(3200000, "audio samples per padded batch")
    max_batch: int = key(32, "utterances per batch")
    max_utt_samples: int = key(0, "drop training utterances longer than this; 0: no limit")


SuperbTrainerConfig = _loop_section("SuperbTrainerConfig", 200000, 1.0, 100, (
    ("valid_interval", int, key(2000, "updates between validations")),
    ("cache_upstream", bool, key(False, "keep each utterance's frozen-upstream states in memory after the first "
                                        "pass (small corpora)"))))


@dataclass
class SuperbConfig(UpstreamRunConfig):
    """bljust.bin.train_superb: a SUPERB downstream (ASR or PR) on a frozen upstream."""
    SELECTOR: ClassVar[str] = "task"
    task: Literal["asr", "pr"] = key("asr", "asr: characters, BiLSTM-CTC; pr: phonemes (text.phn), linear CTC")
    train_data_dir: Optional[str] = key(None, "audio data dir (wav.scp, text or text.phn)")
    valid_data_dir: Optional[str] = key(None, "validation data dir")
    upstream: UpstreamConfig = key(UpstreamConfig(), "the frozen upstream")
    model: SuperbModelConfig = key(SuperbModelConfig(), "the downstream")
    optim: OptimConfig = key(OptimConfig(name="adam", lr=1.0e-4), "optimiser")
    scheduler: SchedulerConfig = key(SchedulerConfig(name="constant"), "lr schedule")
    batching: SuperbBatchingConfig = key(SuperbBatchingConfig(), "batches")
    trainer: SuperbTrainerConfig = key(SuperbTrainerConfig(), "the training loop")


# ------------------------------------------------------------------ bljust.bin.pretrain_upstream
@dataclass
class PretrainBestRQConfig:
    codebook_size: int = key(512, "random codebook entries (classes)")
    codebook_dim: int = key(16, "codebook dimension")
    mask_prob: float = key(0.065, "probability that a frame starts a masked span")
    mask_span: int = key(5, "masked span length (frames)")
    seed: int = key(1234, "seed of the frozen projection and codebook")


@dataclass
class PretrainBatchingConfig:
    max_samples: int = key(640000, "audio samples per padded batch")
    max_batch: int = key(16, "utterances per batch")
    max_seconds: float = key(4.0, "random crop of longer utterances; 0: whole utterances")


PretrainTrainerConfig = _loop_section("PretrainTrainerConfig", 1000, 5.0, 20, (
    ("save_interval", int, key(200, "updates between checkpoints")),
    ("upstream_interval", int, key(0, "also write the upstream as upstream.<update>.pth every N updates; 0: only "
                                      "upstream.pth at the end")),))


FbankConfig = _make("FbankConfig", [
    (f.name, f.type if not isinstance(f.type, str) else typing.get_type_hints(FbankOptions)[f.name],
     key(f.default, "Kaldi fbank option (bljust.features.fbank.FbankOptions)"))
    for f in dataclasses.fields(FbankOptions)])


@dataclass
class PretrainConfig(UpstreamRunConfig):
    """bljust.bin.pretrain_upstream: HuBERT-style masked prediction with BEST-RQ targets."""
    train_data_dirs: List[str] = key([], "audio data dirs (a list, or one string of blank-separated dirs)")
    upstream: UpstreamConfig = key(UpstreamConfig(), "the upstream to pre-train")
    fbank: FbankConfig = key(FbankConfig(), "the fbank the targets are computed from")
    bestrq: PretrainBestRQConfig = key(PretrainBestRQConfig(), "masking and targets")
    optim: OptimConfig = key(OptimConfig(lr=5.0e-4, weight_decay=0.01, betas=(0.9, 0.98)), "optimiser")
    scheduler: SchedulerConfig = key(SchedulerConfig(name="linear", warmup_steps=100), "lr schedule")
    batching: PretrainBatchingConfig = key(PretrainBatchingConfig(), "batches")
    trainer: PretrainTrainerConfig = key(PretrainTrainerConfig(), "the training loop")


SCHEMAS: Dict[str, type] = {"train": TrainConfig, "ssft": SSFTConfig, "superb": SuperbConfig,
                            "pretrain": PretrainConfig}


def register(kind: str, cls: type) -> None:
    """Makes a new method's config section loadable: load_config(path, overrides, kind) and
    run_with_config(..., kind, ...) then check it like every other (docs/training.md)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if SCHEMAS.get(kind, cls) is not cls:
        raise ValueError(f"a config schema '{kind}' is already registered")
    SCHEMAS[kind] = cls
