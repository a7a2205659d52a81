"""Self-supervised speech upstreams (HuBERT, WavLM) built with torchaudio's builders.

`Upstream` returns every hidden state, the transformer's input (CNN features after
projection and convolutional position embedding) first, then each layer's output:
SUPERB's weighted sum needs them all, LASER uses one (`representation_layer`).
Weights come from a local checkpoint in torchaudio, fairseq or Hugging Face layout
(`upstream_convert`); nothing is downloaded.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torchaudio.models import wav2vec2_model, wavlm_model

from bljust.nets import upstream_convert as conv

log = logging.getLogger(__name__)

_BASE: Dict[str, Any] = dict(
    extractor_mode="group_norm", extractor_conv_layer_config=None, extractor_conv_bias=False,
    encoder_embed_dim=768, encoder_projection_dropout=0.1, encoder_pos_conv_kernel=128,
    encoder_pos_conv_groups=16, encoder_num_layers=12, encoder_num_heads=12,
    encoder_attention_dropout=0.1, encoder_ff_interm_features=3072, encoder_ff_interm_dropout=0.0,
    encoder_dropout=0.1, encoder_layer_norm_first=False,
    # hidden states are computed layer by layer here, which never drops a layer
    encoder_layer_drop=0.0,
)
_LARGE = dict(_BASE, extractor_mode="layer_norm", encoder_embed_dim=1024, encoder_num_layers=24,
              encoder_num_heads=16, encoder_ff_interm_features=4096, encoder_layer_norm_first=True)
_WAVLM = dict(encoder_num_buckets=320, encoder_max_distance=800)

ARCHS: Dict[str, Dict[str, Any]] = {
    "hubert_base": dict(_BASE, kind="hubert"),
    "hubert_large": dict(_LARGE, kind="hubert"),
    "wavlm_base": dict(_BASE, kind="wavlm", **_WAVLM),
    "wavlm_large": dict(_LARGE, kind="wavlm", normalize_waveform=True, **_WAVLM),
}


def resolve_config(arch: Union[str, Mapping[str, Any]], **overrides: Any) -> Dict[str, Any]:
    """A named architecture (ARCHS) or a full dict of builder arguments plus `kind`."""
    if isinstance(arch, str):
        if arch not in ARCHS:
            raise ValueError(f"unknown upstream arch {arch!r}; known: {sorted(ARCHS)}")
        cfg = dict(ARCHS[arch])
    else:
        cfg = dict(arch)
    cfg.update(overrides)
    if cfg.get("kind") not in ("hubert", "wavlm"):
        raise ValueError(f"upstream config needs kind 'hubert' or 'wavlm', got {cfg.get('kind')!r}")
    return cfg


def build_model(cfg: Mapping[str, Any]) -> nn.Module:
    """torchaudio Wav2Vec2Model for a resolved config (see `resolve_config`)."""
    kw = {k: v for k, v in cfg.items() if k not in ("kind", "normalize_waveform")}
    if cfg["kind"] == "wavlm":
        return wavlm_model(**kw, aux_num_out=None)
    kw = {k: v for k, v in kw.items() if k not in _WAVLM}
    return wav2vec2_model(**kw, aux_num_out=None)


def _pad_mask(lens: torch.Tensor, T: int) -> torch.Tensor:
    return torch.arange(T, device=lens.device)[None, :] >= lens[:, None]


class Upstream(nn.Module):
    def __init__(self, arch: Union[str, Mapping[str, Any]] = "hubert_base", representation_layer: int = -1,
                 exact_padding: bool = False, **overrides: Any) -> None:
        """exact_padding: run the CNN one utterance at a time when a batch is padded. The
        base models' first group norm normalises each channel over the whole input, padding
        included, so a padded utterance gets other features than alone (fairseq and s3prl
        batch that way, which SUPERB numbers include; LASER pairs differ in length by up to 20%)."""
        super().__init__()
        self.exact_padding = exact_padding
        self.config = resolve_config(arch, **overrides)
        self.kind: str = self.config["kind"]
        self.normalize_waveform = bool(self.config.get("normalize_waveform", False))
        self.model = build_model(self.config)
        self.num_layers: int = len(self.model.encoder.transformer.layers)
        self.hidden_dim: int = int(self.config["encoder_embed_dim"])
        self.representation_layer = self._layer_index(representation_layer)

    def _layer_index(self, i: int) -> int:
        """Index into the hidden states: 0 = transformer input, L = last layer; negatives count back."""
        n = self.num_layers + 1
        if not -n <= i < n:
            raise ValueError(f"representation_layer {i} out of range for {self.num_layers} layers")
        return i % n

    # ------------------------------------------------------------------ weights
    @classmethod
    def from_checkpoint(cls, path: str, arch: Union[str, Mapping[str, Any], None] = None, trust: bool = False,
                        representation_layer: int = -1, **overrides: Any) -> "Upstream":
        """Builds the upstream and loads `path`; without `arch`, HuBERT/WavLM is told
        from the keys and base/large from the embedding size."""
        sd = conv.unwrap(conv.read_checkpoint(path, trust=trust))
        kind = conv.detect_kind(sd)
        if arch is None:
            ta, _ = conv.to_torchaudio(sd, kind=kind)
            w = ta.get("encoder.feature_projection.projection.weight")
            if w is None:
                raise conv.CheckpointError(f"{path}: no feature projection weight; pass the architecture explicitly")
            arch = f"{kind}_{'large' if w.shape[0] == 1024 else 'base'}"
            log.info("%s: looks like %s", path, arch)
        up = cls(arch, representation_layer=representation_layer, **overrides)
        if up.kind != kind:
            raise conv.CheckpointError(f"{path}: holds a {kind} model, but the architecture asked for is {up.kind}")
        up.load_state(sd, where=path)
        return up

    def load_state(self, sd: Dict[str, torch.Tensor], fmt: Optional[str] = None, where: str = "checkpoint") -> str:
        """Strictly loads a state dict in any supported layout; returns the layout found."""
        fmt = fmt or conv.detect_format(sd)
        ta, unknown = conv.to_torchaudio(sd, fmt=fmt, kind=self.kind)
        try:
            res = self.model.load_state_dict(ta, strict=False)
        except RuntimeError as e:  # size mismatches
            raise conv.CheckpointError(f"{where} ({fmt}): does not fit the {self.kind} architecture "
                                       f"built: {e}") from e
        unexpected = list(res.unexpected_keys) + unknown
        if res.missing_keys or unexpected:
            raise conv.CheckpointError(
                f"{where} ({fmt}): {len(res.missing_keys)} missing keys {sorted(res.missing_keys)[:20]}, "
                f"{len(unexpected)} unexpected keys {sorted(unexpected)[:20]}")
        log.info("loaded %d tensors from %s (%s layout)", len(ta), where, fmt)
        return fmt

    # ------------------------------------------------------------------ training setup
    def freeze_except_last(self, n: int = 2) -> None:
        """Only the last `n` transformer layers (and a final layer norm after them) train."""
        if not 0 <= n <= self.num_layers:
            raise ValueError(f"n must be in [0, {self.num_layers}], got {n}")
        for p in self.parameters():
            p.requires_grad_(False)
        tr = self.model.encoder.transformer
        for layer in list(tr.layers)[self.num_layers - n:]:
            layer.requires_grad_(True)
        if n > 0 and self.config["encoder_layer_norm_first"]:  # pre-LN: the final norm follows the last layer
            tr.layer_norm.requires_grad_(True)

    def _first_trainable_stage(self) -> int:
        """Stages: 0 CNN, 1 projection + position conv, 2+i transformer layer i."""
        enc = self.model.encoder
        stages = [self.model.feature_extractor, nn.ModuleList([enc.feature_projection, enc.transformer.pos_conv_embed])]
        stages += list(enc.transformer.layers)
        for i, s in enumerate(stages):
            if any(p.requires_grad for p in s.parameters()):
                return i
        return len(stages)

    # ------------------------------------------------------------------ forward
    def _normalize(self, wavs: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        valid = (~_pad_mask(lens, wavs.size(1))).to(wavs.dtype)
        n = valid.sum(1, keepdim=True).clamp(min=1)
        mean = (wavs * valid).sum(1, keepdim=True) / n
        var = (((wavs - mean) * valid) ** 2).sum(1, keepdim=True) / n
        return (wavs - mean) / torch.sqrt(var + 1e-5) * valid

    def _cnn(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        fe = self.model.feature_extractor
        if not (self.exact_padding and self.config["extractor_mode"] == "group_norm"
                and bool((wav_lens < wavs.size(1)).any())):
            return fe(wavs, wav_lens)
        outs = [fe(wavs[i: i + 1, : int(n)], None)[0][0] for i, n in enumerate(wav_lens)]
        return torch.nn.utils.rnn.pad_sequence(outs, batch_first=True), self._cnn_lengths(wav_lens)

    def _cnn_lengths(self, lens: torch.Tensor) -> torch.Tensor:
        for layer in self.model.feature_extractor.conv_layers:
            lens = torch.clamp(torch.div(lens - layer.kernel_size, layer.stride, rounding_mode="floor") + 1, min=0)
        return lens

    def forward(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None,
                num_layers: Optional[int] = None) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """wavs (B, S) at 16 kHz -> ([L+1 or num_layers+1 tensors (B, T, D)], frame lengths (B,)).

        Stages before the first trainable parameter run without autograd, so LASER
        fine-tuning of the last layers stores no activations for the frozen ones."""
        if wavs.dim() != 2:
            raise ValueError(f"wavs must be (B, S), got {tuple(wavs.shape)}")
        if wav_lens is None:
            wav_lens = torch.full((wavs.size(0),), wavs.size(1), dtype=torch.long, device=wavs.device)
        n = self.num_layers if num_layers is None else num_layers
        first = self._first_trainable_stage() if torch.is_grad_enabled() else 0

        def stage(i: int):
            return torch.no_grad() if i < first else contextlib.nullcontext()

        enc, tr = self.model.encoder, self.model.encoder.transformer
        with stage(0):
            if self.normalize_waveform:
                wavs = self._normalize(wavs, wav_lens)
            feats, lens = self._cnn(wavs, wav_lens)
        with stage(1):
            x = enc.feature_projection(feats)
            pad = _pad_mask(lens, x.size(1))
            x = tr._preprocess(x.masked_fill(pad[..., None], 0.0))
        attn_mask, key_pad = None, None
        if bool(pad.any()):
            neg = -10000.0 * pad.to(x.dtype)  # additive, as torchaudio's own encoder does
            if self.kind == "wavlm":  # WavLM attention takes a (B, T) key padding mask only
                key_pad = neg
            else:
                attn_mask = neg[:, None, None, :].expand(-1, 1, x.size(1), -1)
        hidden = [x]
        bias = None
        for i, layer in enumerate(list(tr.layers)[:n]):
            with stage(2 + i):
                x, bias = layer(x, attn_mask, position_bias=bias, key_padding_mask=key_pad)
            hidden.append(x)
        if n == self.num_layers and self.config["encoder_layer_norm_first"]:
            hidden[-1] = tr.layer_norm(hidden[-1])
        return hidden, lens

    def representation(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The hidden state at `representation_layer`, running only the layers it needs."""
        hidden, lens = self(wavs, wav_lens, num_layers=self.representation_layer)
        return hidden[self.representation_layer], lens


class LaserHead(nn.Module):
    """Linear projection to the alignment space, unit length per frame."""

    def __init__(self, in_dim: int = 768, out_dim: int = 256) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(x), dim=-1)


class LaserEncoder(nn.Module):
    """Upstream + LaserHead: waveforms -> Z (B, T, out_dim), frame lengths."""

    def __init__(self, upstream: Upstream, out_dim: int = 256, train_last: int = 2) -> None:
        super().__init__()
        upstream.exact_padding = True  # x and x' differ in length; neither may see the other's padding
        self.upstream = upstream
        self.head = LaserHead(upstream.hidden_dim, out_dim)
        upstream.freeze_except_last(train_last)

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h, lens = self.upstream.representation(wavs, wav_lens)
        return self.head(h), lens

    def trainable_parameters(self) -> List[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]
