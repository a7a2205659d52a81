"""Checkpoint formats of HuBERT / WavLM: torchaudio, fairseq (incl. Microsoft's WavLM) and Hugging Face.

Everything is converted to the key names of torchaudio's `wav2vec2_model` /
`wavlm_model` builders. Keys that belong to pre-training or fine-tuning heads
(HuBERT's `label_embs_concat`/`final_proj`, mask embeddings, quantisers, CTC
heads) are dropped on purpose and counted in the log; anything else that does not
map is reported, so a checkpoint of another architecture fails loudly.

The inverse direction (`export_state_dict`) writes a LASER fine-tuned upstream in
the layout other toolkits (fairseq/s3prl, transformers) load.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import safetensors.torch
import torch

from bljust.utils import fileio, serialization

log = logging.getLogger(__name__)

FORMATS = ("torchaudio", "fairseq", "huggingface")

# torchaudio names, relative to these prefixes
_FE = "feature_extractor.conv_layers."
_TL = "encoder.transformer.layers."
_POS = "encoder.transformer.pos_conv_embed.conv."
# torch's weight_norm parametrisation: original0 is the norm g, original1 the direction v
_G, _V = "parametrizations.weight.original0", "parametrizations.weight.original1"

# keys of pre-training / fine-tuning heads that an upstream does not use
_IGNORED = {
    "fairseq": re.compile(r"^(label_embs_concat|final_proj\.|mask_emb|quantizer\.|project_q\.|target_glu\.|"
                         r"(w2v_encoder\.)?proj\.)"),
    "huggingface": re.compile(r"^(masked_spec_embed|lm_head\.|project_hid\.|project_q\.|quantizer\.|"
                              r"label_embeddings_concat|final_proj\.)"),
    # aux: torchaudio's CTC head; head: the LaserHead saved beside a LASER fine-tuned upstream
    "torchaudio": re.compile(r"^(aux\.|head\.)"),
}


class CheckpointError(serialization.CheckpointError):
    pass


# ----------------------------------------------------------------------------- reading
def _fairseq_records() -> List[Any]:
    """What fairseq pickles besides tensors and containers, all plain records that cannot run
    code: the argparse.Namespace of its options, numpy scalars (and their dtypes) in extra_state."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [argparse.Namespace, core.multiarray.scalar, np.dtype] + sorted(
        {type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")}, key=str)


def _fairseq_writable() -> List[type]:
    """The classes of `_fairseq_records` as instances have them, for writing a checkpoint back."""
    import numpy as np

    kinds = ("float64", "float32", "int64", "int32", "bool")
    return [argparse.Namespace] + [np.dtype(t).type for t in kinds] + [type(np.dtype(t)) for t in kinds]


def read_checkpoint(path: str, trust: bool = False) -> Dict[str, Any]:
    """torch.load with weights_only=True, fairseq's plain records (argparse.Namespace, numpy
    scalars) allowed. Anything else pickled (e.g. an omegaconf config object) is refused,
    and only unpickled (running code stored in the file) when the user trusts the file."""
    if os.path.isdir(path):
        cand = [os.path.join(path, n) for n in ("pytorch_model.bin", "model.safetensors")]
        found = [c for c in cand if os.path.exists(c)]
        if not found:
            raise CheckpointError(f"{path}: directory holds neither pytorch_model.bin nor model.safetensors")
        path = found[0]
    if path.endswith(".safetensors"):
        return dict(safetensors.torch.load_file(path))
    try:
        obj = serialization.load(path, safe_globals=_fairseq_records(), what="upstream checkpoint")
    except serialization.UnsafeFileError as e:
        if not trust:
            raise CheckpointError(f"{e}. If you trust this file, pass --trust_checkpoint (upstream.trust_checkpoint "
                                  "true).") from None
        log.warning("%s: loading with weights_only=False because it was marked trusted; "
                    "this runs code stored in the file", path)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(obj).__name__}")
    return obj


def _tensors_only(d: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    return {k: v for k, v in d.items() if isinstance(v, torch.Tensor)}


def unwrap(obj: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: fairseq and bljust put it under 'model',
    others under 'state_dict'; a bare state dict is returned as is."""
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), dict) and any(isinstance(v, torch.Tensor) for v in obj[key].values()):
            return _tensors_only(obj[key])
    return _tensors_only(obj)


def detect_format(sd: Dict[str, torch.Tensor]) -> str:
    keys = list(sd)
    if any(".transformer.layers." in k or "transformer.pos_conv_embed" in k for k in keys):
        return "torchaudio"
    if any("post_extract_proj" in k or ".self_attn." in k for k in keys):
        return "fairseq"
    if any("feature_projection.projection" in k or re.search(r"encoder\.layers\.\d+\.attention\.", k) for k in keys):
        return "huggingface"
    raise CheckpointError("cannot tell the checkpoint's format (torchaudio, fairseq or Hugging Face) from its keys; "
                          f"first keys: {keys[:5]}")


def detect_kind(sd: Dict[str, torch.Tensor]) -> str:
    """'wavlm' if the checkpoint holds a gated relative position bias, else 'hubert'."""
    return "wavlm" if any(re.search(r"(gru_rel_pos|grep_linear|grep_a|rel_attn_embed|relative_attention_bias)", k)
                          for k in sd) else "hubert"


# ----------------------------------------------------------------------------- to torchaudio
def _strip_prefix(sd: Dict[str, torch.Tensor], anchor: str) -> Dict[str, torch.Tensor]:
    """Removes whatever comes before `anchor` in the key that contains it (e.g. 'hubert.',
    'w2v_encoder.w2v_model.', 'model.'), from every key that carries the same prefix."""
    hits = [k for k in sd if k.endswith(anchor)]
    if not hits:
        return sd
    prefix = hits[0][: -len(anchor)]
    if not prefix:
        return sd
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}


# the first conv's weight, present in every layout: what comes before it in its key is a wrapper's prefix
_ANCHOR = {"torchaudio": "feature_extractor.conv_layers.0.conv.weight",
           "fairseq": "feature_extractor.conv_layers.0.0.weight",
           "huggingface": "feature_extractor.conv_layers.0.conv.weight"}


def _fairseq_key(k: str) -> Optional[str]:
    m = re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", k)
    if m:
        return f"{_FE}{m[1]}.conv.{m[2]}"
    # group norm (first layer only) is module 2; layer norm is module 2.1 (between two transposes)
    m = re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.2(?:\.1)?\.(weight|bias)", k)
    if m:
        return f"{_FE}{m[1]}.layer_norm.{m[2]}"
    m = re.fullmatch(r"(layer_norm|post_extract_proj)\.(weight|bias)", k)
    if m:
        sub = "layer_norm" if m[1] == "layer_norm" else "projection"
        return f"encoder.feature_projection.{sub}.{m[2]}"
    m = re.fullmatch(r"encoder\.pos_conv\.0\.(bias|weight_g|weight_v)", k)
    if m:
        return _POS + {"bias": "bias", "weight_g": _G, "weight_v": _V}[m[1]]
    m = re.fullmatch(r"encoder\.layer_norm\.(weight|bias)", k)
    if m:
        return f"encoder.transformer.layer_norm.{m[1]}"
    m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", k)
    if not m:
        return None
    i, rest = m[1], m[2]
    table = [
        (r"self_attn\.((?:q|k|v|out)_proj\.(?:weight|bias))", "attention.{}"),
        (r"self_attn\.grep_linear\.(weight|bias)", "attention.gru_rel_pos_linear.{}"),
        (r"self_attn\.grep_a", "attention.gru_rel_pos_const"),
        (r"self_attn\.relative_attention_bias\.weight", "attention.rel_attn_embed.weight"),
        (r"self_attn_layer_norm\.(weight|bias)", "layer_norm.{}"),
        (r"fc1\.(weight|bias)", "feed_forward.intermediate_dense.{}"),
        (r"fc2\.(weight|bias)", "feed_forward.output_dense.{}"),
        (r"final_layer_norm\.(weight|bias)", "final_layer_norm.{}"),
    ]
    for pat, out in table:
        mm = re.fullmatch(pat, rest)
        if mm:
            return f"{_TL}{i}." + out.format(*mm.groups())
    return None


def _hf_key(k: str) -> Optional[str]:
    if k.startswith("feature_extractor.conv_layers."):
        return k  # same layout as torchaudio: conv_layers.N.{conv,layer_norm}
    m = re.fullmatch(r"feature_projection\.(layer_norm|projection)\.(weight|bias)", k)
    if m:
        return f"encoder.{k}"
    m = re.fullmatch(r"encoder\.pos_conv_embed\.conv\."
                     r"(bias|weight_g|weight_v|parametrizations\.weight\.original[01])", k)
    if m:
        return _POS + {"bias": "bias", "weight_g": _G, "weight_v": _V}.get(m[1], m[1])
    m = re.fullmatch(r"encoder\.layer_norm\.(weight|bias)", k)
    if m:
        return f"encoder.transformer.layer_norm.{m[1]}"
    m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", k)
    if m and re.fullmatch(r"(attention\.((q|k|v|out)_proj\.(weight|bias)|gru_rel_pos_linear\.(weight|bias)|"
                          r"gru_rel_pos_const|rel_attn_embed\.weight)|layer_norm\.(weight|bias)|"
                          r"feed_forward\.(intermediate|output)_dense\.(weight|bias)|final_layer_norm\.(weight|bias))",
                          m[2]):
        return f"{_TL}{m[1]}.{m[2]}"
    return None


def _fuse_wavlm_qkv(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """WavLM in torchaudio keeps q, k, v in one nn.MultiheadAttention (in_proj_*, in
    that order) and its output projection inside it."""
    out = dict(sd)
    layers = sorted({int(m[1]) for k in sd if (m := re.match(rf"{re.escape(_TL)}(\d+)\.attention\.q_proj\.", k))})
    for i in layers:
        p = f"{_TL}{i}.attention."
        for t in ("weight", "bias"):
            parts = [out.pop(f"{p}{n}_proj.{t}", None) for n in ("q", "k", "v")]
            if any(x is None for x in parts):
                raise CheckpointError(f"layer {i}: q/k/v projection {t} incomplete")
            out[f"{p}attention.in_proj_{t}"] = torch.cat(parts, dim=0)
            out[f"{p}attention.out_proj.{t}"] = out.pop(f"{p}out_proj.{t}")
    return out


def to_torchaudio(sd: Dict[str, torch.Tensor], fmt: Optional[str] = None, kind: Optional[str] = None
                  ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Converts a state dict to torchaudio's names. Returns (state dict, keys that
    mapped to nothing and are not known head keys)."""
    fmt = fmt or detect_format(sd)
    kind = kind or detect_kind(sd)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    sd = _strip_prefix(sd, _ANCHOR[fmt])
    mapper: Callable[[str], Optional[str]] = {
        "torchaudio": lambda k: k if k.startswith(("feature_extractor.", "encoder.")) else None,
        "fairseq": _fairseq_key, "huggingface": _hf_key}[fmt]
    out: Dict[str, torch.Tensor] = {}
    unknown: List[str] = []
    ignored = 0
    for k, v in sd.items():
        new = mapper(k)
        if new is not None:
            out[new] = v
        elif _IGNORED[fmt].match(k):
            ignored += 1
        else:
            unknown.append(k)
    if ignored:
        log.info("dropped %d %s keys of pre-training/fine-tuning heads", ignored, fmt)
    if kind == "wavlm" and fmt != "torchaudio":
        out = _fuse_wavlm_qkv(out)
    return out, unknown


# ----------------------------------------------------------------------------- export
def _split_wavlm_qkv(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    out = dict(sd)
    for k in [k for k in sd if k.endswith(".attention.attention.in_proj_weight")]:
        p = k[: -len("attention.in_proj_weight")]
        for t in ("weight", "bias"):
            q, kk, v = out.pop(f"{p}attention.in_proj_{t}").chunk(3, dim=0)
            out[f"{p}q_proj.{t}"], out[f"{p}k_proj.{t}"], out[f"{p}v_proj.{t}"] = q, kk, v
            out[f"{p}out_proj.{t}"] = out.pop(f"{p}attention.out_proj.{t}")
    return out


def _inverse_key(k: str, fmt: str, ln_mode: bool) -> str:
    """Inverse of `_fairseq_key` / `_hf_key`; `ln_mode`: the extractor normalises every
    conv layer with a layer norm (fairseq module 2.1) instead of one group norm (2)."""
    if fmt == "huggingface":
        if k.startswith("encoder.feature_projection."):
            return k[len("encoder."):]
        if k.startswith(_POS):
            return "encoder.pos_conv_embed.conv." + {"bias": "bias", _G: "weight_g", _V: "weight_v"}[k[len(_POS):]]
        return k.replace("encoder.transformer.", "encoder.")
    # fairseq
    m = re.fullmatch(rf"{re.escape(_FE)}(\d+)\.(conv|layer_norm)\.(weight|bias)", k)
    if m:
        return f"feature_extractor.conv_layers.{m[1]}.{'0' if m[2] == 'conv' else ('2.1' if ln_mode else '2')}.{m[3]}"
    if k.startswith("encoder.feature_projection."):
        sub, t = k.split(".")[-2:]
        return f"{'layer_norm' if sub == 'layer_norm' else 'post_extract_proj'}.{t}"
    if k.startswith(_POS):
        return "encoder.pos_conv.0." + {"bias": "bias", _G: "weight_g", _V: "weight_v"}[k[len(_POS):]]
    if k.startswith("encoder.transformer.layer_norm."):
        return "encoder.layer_norm." + k.split(".")[-1]
    m = re.fullmatch(rf"{re.escape(_TL)}(\d+)\.(.+)", k)
    if not m:
        raise CheckpointError(f"no fairseq name for {k}")
    rest = m[2]
    for a, b in (("attention.gru_rel_pos_linear", "self_attn.grep_linear"),
                 ("attention.gru_rel_pos_const", "self_attn.grep_a"),
                 ("attention.rel_attn_embed", "self_attn.relative_attention_bias"),
                 ("attention.", "self_attn."), ("layer_norm.", "self_attn_layer_norm."),
                 ("feed_forward.intermediate_dense.", "fc1."), ("feed_forward.output_dense.", "fc2.")):
        if rest.startswith(a):
            rest = b + rest[len(a):]
            break
    return f"encoder.layers.{m[1]}.{rest}"


def export_state_dict(sd: Dict[str, torch.Tensor], fmt: str, kind: str, prefix: str = "") -> Dict[str, torch.Tensor]:
    """torchaudio-named state dict -> fairseq ('model' of a fairseq checkpoint) or
    Hugging Face names (`prefix` 'hubert.'/'wavlm.' for the *ForCTC layout)."""
    if fmt == "torchaudio":
        return {prefix + k: v for k, v in sd.items()}
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if kind == "wavlm":
        sd = _split_wavlm_qkv(sd)
    ln_mode = f"{_FE}1.layer_norm.weight" in sd
    return {prefix + _inverse_key(k, fmt, ln_mode): v for k, v in sd.items()}


def _weight_norm_spellings(name: str) -> List[str]:
    """`name` and its other weight-norm spelling (weight_g/_v of torch's old weight_norm, which
    published files use, or the parametrisation's original0/1, which newer torch writes)."""
    for a, b in (("weight_g", _G), ("weight_v", _V)):
        for x, y in ((a, b), (b, a)):
            if name.endswith("." + x):
                return [name, name[: -len(x)] + y]
    return [name]


def fill_like(template: Dict[str, Any], upstream: Dict[str, torch.Tensor], fmt: str, kind: str,
              where: str) -> Dict[str, Any]:
    """`template` (the checkpoint an upstream was imported from, in layout `fmt`) with the
    upstream's tensors (`export_state_dict` names, no prefix) in place of its own. Everything
    else stays: fairseq's 'cfg'/'args', the heads (mask embedding, HuBERT's label embeddings and
    final_proj, a CTC head), a wrapper's prefix and the template's weight-norm spelling; so the
    result loads wherever the template did, also where loading is strict (fairseq, WavLM's code)."""
    container, slot = template, None
    for key in ("model", "state_dict"):
        if isinstance(template.get(key), dict) and any(isinstance(v, torch.Tensor) for v in template[key].values()):
            container, slot = template[key], key
            break
    tensors = _tensors_only(container)
    found, found_kind = detect_format(tensors), detect_kind(tensors)
    if (found, found_kind) != (fmt, kind):
        raise CheckpointError(f"{where}: a {found_kind} checkpoint in {found} layout, but the upstream is a "
                              f"{kind} to be written in {fmt} layout")
    prefix = next((k[: -len(_ANCHOR[fmt])] for k in tensors if k.endswith(_ANCHOR[fmt])), "")
    out, used = dict(container), set()
    for k, v in tensors.items():
        name = k[len(prefix):] if k.startswith(prefix) else k
        hit = next((n for n in _weight_norm_spellings(name) if n in upstream), None)
        if hit is None:
            if not _IGNORED[fmt].match(name):
                raise CheckpointError(f"{where}: {k} is not part of the upstream and not a known head: "
                                      "not the checkpoint this upstream was imported from")
            continue
        if upstream[hit].shape != v.shape:
            raise CheckpointError(f"{where}: {k} has shape {tuple(v.shape)}, the upstream's "
                                  f"{tuple(upstream[hit].shape)}: not the checkpoint this upstream was imported from")
        out[k] = upstream[hit]
        used.add(hit)
    missing = sorted(set(upstream) - used)
    if missing:
        raise CheckpointError(f"{where}: lacks {len(missing)} of the upstream's tensors, e.g. {missing[:5]}: "
                              "not the checkpoint this upstream was imported from")
    return out if slot is None else dict(template, **{slot: out})


def _save_safetensors(obj: Dict[str, Any], dst: str, fmt: str) -> None:
    """Hugging Face's model.safetensors (or any flat layout): tensors only."""
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{dst}: a .safetensors file holds tensors only; the {fmt} layout needs more "
                              "('cfg', 'model'): write a .pt file")
    # transformers refuses a file without metadata format 'pt'
    data = safetensors.torch.save({k: v.detach().contiguous() for k, v in obj.items()}, metadata={"format": "pt"})
    with fileio.atomic_write(dst, "wb", encoding=None) as f:
        f.write(data)


def convert_checkpoint(src: str, dst: str, to: str, prefix: str = "", trust: bool = False,
                       like: Optional[str] = None) -> str:
    """Writes the upstream of checkpoint `src` to `dst` in format `to` (fairseq: under 'model',
    as s3prl reads it); returns the upstream kind (hubert or wavlm). `like`: the checkpoint the
    upstream came from, in layout `to`; its configuration, heads, prefix and key spelling are
    kept and only the upstream's tensors replaced (`fill_like`); `prefix` is then not used."""
    if to not in FORMATS:
        raise ValueError(f"unknown format '{to}' ({', '.join(FORMATS)})")
    sd = unwrap(read_checkpoint(src, trust=trust))
    kind = detect_kind(sd)
    ta, unknown = to_torchaudio(sd, kind=kind)
    if unknown:
        raise CheckpointError(f"{src}: keys that map to nothing: {unknown[:20]}")
    if like is not None:
        obj = fill_like(read_checkpoint(like, trust=trust), export_state_dict(ta, to, kind), to, kind, like)
    else:
        out = export_state_dict(ta, to, kind, prefix)
        obj = {"model": out} if to == "fairseq" else out
        if to == "fairseq":
            log.warning("%s: holds the upstream's tensors only, without the 'cfg' and the pre-training heads "
                        "that fairseq's and WavLM's own loaders need; give the original checkpoint as `like` "
                        "(--like) for a file that loads there", dst)
    if dst.endswith(".safetensors"):
        _save_safetensors(obj, dst, to)
        return kind
    try:
        serialization.save(obj, dst, safe_globals=_fairseq_writable())
    except TypeError as e:  # a template read with trust may hold pickled objects bljust does not write
        raise CheckpointError(f"{like or src}: {e}; export without `like` (--like), or save the template "
                              "with plain containers in place of its objects") from None
    return kind
