"""HuBERT-base and WavLM-base at full size, in the layouts their published checkpoints use.

The checkpoints cannot be downloaded here, so each layout is written from its key names and
shapes (below) with random weights; the reference each import is checked against is built by
torchaudio's own conversion code (`import_fairseq._convert_state_dict`, and the module-by-module
loading plus `transform_wavlm_encoder_state` of `import_huggingface`), not by bljust's.

Architecture (torchaudio `hubert_base` / `wavlm_base`): CNN of 7 convs without bias,
(512, 10, 5) + 4 x (512, 3, 2) + 2 x (512, 2, 2), a group norm (512 groups) after the first;
projection 512 -> 768; positional conv of kernel 128, 16 groups, weight-normed over dim 2;
12 post-LN layers, 12 heads, FFN 3072. WavLM adds gated relative position bias: 320 buckets,
max distance 800, the bias table in layer 0 only. Per layout ({c} conv 0..6, {i} layer 0..11,
{p} = q, k, v, out; {t} = weight/bias; shapes of weights, biases are the first dim):

fairseq (`hubert_base_ls960.pt`: {"args": None, "cfg": {..., "model": {"_name": "hubert", ...},
"task": {...}}, "model": ..., "optimizer_history", "extra_state" (numpy scalars), "task_state"};
Microsoft's `WavLM-Base.pt`: {"cfg": {WavLMConfig fields}, "model": ...}):
    feature_extractor.conv_layers.{c}.0.weight   (512, 1, 10) | (512, 512, 3) | (512, 512, 2)
    feature_extractor.conv_layers.0.2.{t}        (512,)   group norm
    layer_norm.{t} (512,); post_extract_proj.weight (768, 512)
    encoder.pos_conv.0.weight_g (1, 1, 128); .weight_v (768, 48, 128); .bias (768,)
    encoder.layer_norm.{t} (768,)
    encoder.layers.{i}.self_attn.{p}_proj.{t} (768, 768); self_attn_layer_norm.{t};
      fc1.weight (3072, 768); fc2.weight (768, 3072); final_layer_norm.{t}
    WavLM: encoder.layers.{i}.self_attn.grep_linear.weight (8, 64), .bias (8,);
      self_attn.grep_a (1, 12, 1, 1); encoder.layers.0.self_attn.relative_attention_bias.weight (320, 12)
    heads, dropped and counted: mask_emb (768,); HuBERT also label_embs_concat (504, 256),
      final_proj.weight (256, 768), final_proj.bias (256,)
    fine-tuned (fairseq's *_ft / *_finetune_*.pt): all of the above under "w2v_encoder.w2v_model.",
      plus w2v_encoder.proj.{t} (vocab, 768), dropped
Hugging Face (`facebook/hubert-base-ls960`, `microsoft/wavlm-base`: HubertModel / WavLMModel,
bare state dict in pytorch_model.bin or model.safetensors):
    feature_extractor.conv_layers.{c}.conv.weight; feature_extractor.conv_layers.0.layer_norm.{t}
    feature_projection.layer_norm.{t} (512,); feature_projection.projection.weight (768, 512)
    encoder.pos_conv_embed.conv.weight_g / .weight_v (written by transformers before torch's
      parametrised weight norm) or .parametrizations.weight.original0 / .original1 (newer); .bias
    encoder.layer_norm.{t}; encoder.layers.{i}.attention.{p}_proj.{t}; .layer_norm.{t};
      .feed_forward.intermediate_dense.weight (3072, 768); .feed_forward.output_dense.weight
      (768, 3072); .final_layer_norm.{t}
    WavLM: encoder.layers.{i}.attention.gru_rel_pos_linear.{t} (8, 64); .gru_rel_pos_const
      (1, 12, 1, 1); encoder.layers.0.attention.rel_attn_embed.weight (320, 12)
    heads, dropped and counted: masked_spec_embed (768,); *ForCTC: everything under "hubert." /
      "wavlm.", plus lm_head.{t} (vocab, 768)
torchaudio (pipeline files `hubert_fairseq_base_ls960.pth`, `wavlm_base.pth`: bare state dict):
    feature_extractor.conv_layers.{c}.conv.weight; ...conv_layers.0.layer_norm.{t}
    encoder.feature_projection.{layer_norm,projection}.{t}
    encoder.transformer.pos_conv_embed.conv.weight_g / .weight_v (older torch) or
      .parametrizations.weight.original0 / .original1 (torch >= 2.1); .bias
    encoder.transformer.layer_norm.{t}; encoder.transformer.layers.{i}.attention.{p}_proj.{t}
      (HuBERT) or .attention.attention.in_proj_{t} (2304, 768) with q, k, v stacked in that order,
      .attention.attention.out_proj.{t} (WavLM); the WavLM gate and bias under the HF names.

bljust's export writes the fairseq and Hugging Face layouts with weight_g / weight_v, as the
published files have them (transformers and torch load those into the parametrised form), and
torchaudio's as today's torchaudio does; exported `--like` the original, the file equals the
original (cfg, heads, spelling) with the upstream's tensors in place.
Every comparison is exact (max abs difference 0): the same tensors reach the same torchaudio
modules, so the same float operations run in the same order. 1 s of audio (49 frames).
"""
from __future__ import annotations

import logging
import shutil
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
from torchaudio.models import hubert_base, wavlm_base
from torchaudio.models.wav2vec2.utils.import_fairseq import _convert_state_dict as torchaudio_fairseq_map
from torchaudio.models.wav2vec2.utils.import_huggingface import transform_wavlm_encoder_state

from bljust.nets import upstream_convert as conv
from bljust.nets.upstream import Upstream
from bljust.train.ssft import save_upstream

pytestmark = pytest.mark.usefixtures("one_thread")

CONV = [(512, 1, 10)] + [(512, 512, 3)] * 4 + [(512, 512, 2)] * 2
E, FFN, HEADS, LAYERS, BUCKETS = 768, 3072, 12, 12, 320

NAMES = {
    "fairseq": dict(conv="feature_extractor.conv_layers.{c}.0.weight", gn="feature_extractor.conv_layers.0.2.",
                    fp_ln="layer_norm.", fp_proj="post_extract_proj.", pos="encoder.pos_conv.0.",
                    enc_ln="encoder.layer_norm.", layer="encoder.layers.{i}.", att="self_attn.{p}_proj.",
                    att_ln="self_attn_layer_norm.", ff1="fc1.", ff2="fc2.", final_ln="final_layer_norm.",
                    gate_lin="self_attn.grep_linear.", gate_const="self_attn.grep_a",
                    rel="self_attn.relative_attention_bias.weight"),
    "huggingface": dict(conv="feature_extractor.conv_layers.{c}.conv.weight",
                        gn="feature_extractor.conv_layers.0.layer_norm.", fp_ln="feature_projection.layer_norm.",
                        fp_proj="feature_projection.projection.", pos="encoder.pos_conv_embed.conv.",
                        enc_ln="encoder.layer_norm.", layer="encoder.layers.{i}.", att="attention.{p}_proj.",
                        att_ln="layer_norm.", ff1="feed_forward.intermediate_dense.",
                        ff2="feed_forward.output_dense.", final_ln="final_layer_norm.",
                        gate_lin="attention.gru_rel_pos_linear.", gate_const="attention.gru_rel_pos_const",
                        rel="attention.rel_attn_embed.weight"),
}
NAMES["torchaudio"] = dict(NAMES["huggingface"], fp_ln="encoder.feature_projection.layer_norm.",
                           fp_proj="encoder.feature_projection.projection.",
                           pos="encoder.transformer.pos_conv_embed.conv.", enc_ln="encoder.transformer.layer_norm.",
                           layer="encoder.transformer.layers.{i}.")
WEIGHT_NORM = {"weight_g": ("weight_g", "weight_v"),
               "parametrized": ("parametrizations.weight.original0", "parametrizations.weight.original1")}
HEAD_KEYS = {("fairseq", "hubert"): {"mask_emb": (E,), "label_embs_concat": (504, 256),
                                     "final_proj.weight": (256, E), "final_proj.bias": (256,)},
             ("fairseq", "wavlm"): {"mask_emb": (E,)},
             ("huggingface", "hubert"): {"masked_spec_embed": (E,)},
             ("huggingface", "wavlm"): {"masked_spec_embed": (E,)},
             ("torchaudio", "hubert"): {}, ("torchaudio", "wavlm"): {}}


def layout_shapes(fmt: str, kind: str, weight_norm: str = "weight_g") -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of the upstream's tensors in layout `fmt` (no heads)."""
    n = NAMES[fmt]
    out: Dict[str, Tuple[int, ...]] = {n["conv"].format(c=c): s for c, s in enumerate(CONV)}
    out.update({n["gn"] + t: (512,) for t in ("weight", "bias")})
    out.update({n["fp_ln"] + t: (512,) for t in ("weight", "bias")})
    out.update({n["fp_proj"] + "weight": (E, 512), n["fp_proj"] + "bias": (E,)})
    g, v = WEIGHT_NORM[weight_norm]
    out.update({n["pos"] + g: (1, 1, 128), n["pos"] + v: (E, E // 16, 128), n["pos"] + "bias": (E,)})
    out.update({n["enc_ln"] + t: (E,) for t in ("weight", "bias")})
    for i in range(LAYERS):
        pre = n["layer"].format(i=i)
        if fmt == "torchaudio" and kind == "wavlm":
            out.update({pre + "attention.attention.in_proj_weight": (3 * E, E),
                        pre + "attention.attention.in_proj_bias": (3 * E,),
                        pre + "attention.attention.out_proj.weight": (E, E),
                        pre + "attention.attention.out_proj.bias": (E,)})
        else:
            for p in ("q", "k", "v", "out"):
                att = pre + n["att"].format(p=p)
                out.update({att + "weight": (E, E), att + "bias": (E,)})
        if kind == "wavlm":
            out.update({pre + n["gate_lin"] + "weight": (8, E // HEADS), pre + n["gate_lin"] + "bias": (8,),
                        pre + n["gate_const"]: (1, HEADS, 1, 1)})
            if i == 0:
                out[pre + n["rel"]] = (BUCKETS, HEADS)
        for ln in ("att_ln", "final_ln"):
            out.update({pre + n[ln] + t: (E,) for t in ("weight", "bias")})
        out.update({pre + n["ff1"] + "weight": (FFN, E), pre + n["ff1"] + "bias": (FFN,),
                    pre + n["ff2"] + "weight": (E, FFN), pre + n["ff2"] + "bias": (E,)})
    return out


def random_weights(shapes: Dict[str, Tuple[int, ...]], seed: int) -> Dict[str, torch.Tensor]:
    """Values of a plausible scale (finite, non-degenerate hidden states); norms near 1."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, s in shapes.items():
        x = torch.randn(s, generator=g)
        if k.endswith(("weight_g", "original0")):
            x = 2.0 + 0.1 * x  # effective positional conv weights of std ~ 1/sqrt(fan in)
        elif len(s) == 1 and k.endswith("weight"):
            x = 1.0 + 0.1 * x
        elif len(s) == 1 or k.endswith(("grep_a", "gru_rel_pos_const")):
            x = 0.1 * x
        elif not k.endswith(("weight_v", "original1")):
            x = x / float(np.prod(s[1:])) ** 0.5
        out[k] = x
    return out


def native(fmt: str, kind: str, seed: int, weight_norm: str = "weight_g") -> Dict[str, torch.Tensor]:
    shapes = dict(layout_shapes(fmt, kind, weight_norm), **HEAD_KEYS[fmt, kind])
    return random_weights(shapes, seed)


def fairseq_checkpoint(kind: str, sd: Dict[str, torch.Tensor]) -> dict:
    """The file around the state dict: hydra-era fairseq (HuBERT), or the WavLM repository."""
    model_cfg = dict(extractor_mode="default", encoder_layers=LAYERS, encoder_embed_dim=E,
                     encoder_ffn_embed_dim=FFN, encoder_attention_heads=HEADS, activation_fn="gelu",
                     layer_norm_first=False, conv_feature_layers="[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
                     conv_bias=False, conv_pos=128, conv_pos_groups=16)
    if kind == "wavlm":
        return {"cfg": dict(model_cfg, relative_position_embedding=True, num_buckets=BUCKETS, max_distance=800,
                            gru_rel_pos=True, normalize=False), "model": sd}
    return {"args": None,
            "cfg": {"_name": None, "common": {"seed": 1337, "fp16": True},
                    "model": dict(model_cfg, _name="hubert", label_rate=50, final_dim=256, untie_final_proj=False),
                    "task": {"_name": "hubert_pretraining", "labels": ["km"], "label_rate": 50.0,
                             "sample_rate": 16000, "normalize": False}},
            "model": sd, "criterion": None,
            "optimizer_history": [{"criterion_name": "HubertCriterion", "optimizer_name": "FairseqAdam",
                                   "lr_scheduler_state": {"best": np.float64(2.5)}, "num_updates": 400000}],
            "task_state": {},
            "extra_state": {"epoch": 128, "train_iterator": {"epoch": 128, "iterations_in_epoch": 0, "shuffle": True},
                            "best": np.float64(2.5), "previous_training_time": np.float64(3.0e5),
                            "num_updates": np.int64(400000)}}


# ----------------------------------------------------------------------------- references (torchaudio's code)
def reference(fmt: str, kind: str, sd: Dict[str, torch.Tensor], ref: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The torchaudio state dict torchaudio's own importers make of `sd`, loaded into `ref`
    (torchaudio's hubert_base() / wavlm_base(); every tensor is replaced)."""
    if fmt == "torchaudio":
        ref.load_state_dict(sd)
    elif fmt == "fairseq" and kind == "hubert":
        res = ref.load_state_dict(torchaudio_fairseq_map(sd), strict=False)  # as import_fairseq_model does
        assert not res.missing_keys and res.unexpected_keys == ["label_embs_concat"]
    else:
        if fmt == "fairseq":  # torchaudio has no fairseq WavLM importer: via transformers' WavLM names
            sd = fairseq_wavlm_to_hf(sd)
        parts = {p: {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}
                 for p in ("feature_extractor.", "feature_projection.", "encoder.")}
        assert set(sd) - {k for p, d in parts.items() for k in (p + x for x in d)} == {"masked_spec_embed"}
        enc = dict(parts["encoder."])
        if kind == "wavlm":
            transform_wavlm_encoder_state(enc, LAYERS)
        ref.feature_extractor.load_state_dict(parts["feature_extractor."])
        ref.encoder.feature_projection.load_state_dict(parts["feature_projection."])
        ref.encoder.transformer.load_state_dict(enc)
    return ref.state_dict()


def fairseq_wavlm_to_hf(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The renaming of transformers' convert_wavlm_original_pytorch_checkpoint_to_pytorch.py."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if k == "mask_emb":
            out["masked_spec_embed"] = v
        elif k.startswith("feature_extractor."):
            c, mod = parts[2], parts[3]
            out[f"feature_extractor.conv_layers.{c}.{'conv' if mod == '0' else 'layer_norm'}.{parts[-1]}"] = v
        elif parts[0] in ("layer_norm", "post_extract_proj"):
            out[f"feature_projection.{'layer_norm' if parts[0] == 'layer_norm' else 'projection'}.{parts[1]}"] = v
        elif k.startswith("encoder.pos_conv.0."):
            out["encoder.pos_conv_embed.conv." + parts[-1]] = v
        elif k.startswith("encoder.layers."):
            rest = ".".join(parts[3:])
            for a, b in (("self_attn.grep_linear", "attention.gru_rel_pos_linear"),
                         ("self_attn.grep_a", "attention.gru_rel_pos_const"),
                         ("self_attn.relative_attention_bias", "attention.rel_attn_embed"),
                         ("self_attn_layer_norm", "layer_norm"), ("self_attn.", "attention."),
                         ("fc1", "feed_forward.intermediate_dense"), ("fc2", "feed_forward.output_dense")):
                if rest.startswith(a):
                    rest = b + rest[len(a):]
                    break
            out[f"encoder.layers.{parts[2]}.{rest}"] = v
        else:
            out[k] = v  # encoder.layer_norm.*
    return out


# ----------------------------------------------------------------------------- helpers
WAV = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))  # 1 s at 16 kHz


@pytest.fixture(scope="module", autouse=True)
def no_zip_checksums():
    """torch.save's CRC32 of every record is 5x the cost of writing these 380 MB files (1.5 s of
    2 per file, and again on reading); the files here are read back at once, and what is under
    test is the key names and tensors, not the zip container."""
    from torch.utils.serialization import config
    old = config.save.compute_crc32
    config.save.compute_crc32 = False
    yield
    config.save.compute_crc32 = old


@pytest.fixture
def big_tmp(tmp_path):
    """tmp_path, emptied after the test: pytest keeps the last runs' folders, and each test
    here writes about 1.5 GB."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def refs() -> Dict[str, torch.nn.Module]:
    """torchaudio's own base models, one per kind for the module: references load into them."""
    return {"hubert": hubert_base().eval(), "wavlm": wavlm_base().eval()}


def hidden(up: Upstream):
    with torch.no_grad():
        hs, lens = up(WAV)
    assert len(hs) == LAYERS + 1 and int(lens[0]) == 49 and hs[0].shape == (1, 49, E)
    return hs


def assert_same_tensors(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    diff = [k for k in a if a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:5]}"


def nan_fill(up: Upstream) -> None:
    """A tensor an import leaves out keeps NaN and fails the comparisons."""
    with torch.no_grad():
        for p in up.model.parameters():
            p.fill_(float("nan"))


def write(tmp_path, fmt: str, kind: str, sd: Dict[str, torch.Tensor]) -> str:
    if fmt == "huggingface":
        d = tmp_path / "hf"
        d.mkdir()
        torch.save(sd, d / "pytorch_model.bin")
        return str(d)
    path = tmp_path / f"{kind}_{fmt}.pt"
    torch.save(fairseq_checkpoint(kind, sd) if fmt == "fairseq" else sd, path)
    return str(path)


def expected_export(fmt: str, kind: str, src: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The upstream's tensors under the names of `src` (heads are not the upstream's); torchaudio
    layout as today's torchaudio writes it (torch's parametrised weight norm)."""
    out = {k: v for k, v in src.items() if k not in HEAD_KEYS[fmt, kind]}
    if fmt == "torchaudio":
        out = {k.replace("conv.weight_g", "conv." + WEIGHT_NORM["parametrized"][0])
               .replace("conv.weight_v", "conv." + WEIGHT_NORM["parametrized"][1]): v for k, v in out.items()}
    return out


CASES = [(k, f) for k in ("hubert", "wavlm") for f in conv.FORMATS]


@pytest.mark.parametrize("kind,fmt", CASES)
def test_base_model_round_trip_in_published_layout(big_tmp, caplog, refs, kind, fmt):
    tmp_path = big_tmp
    src = native(fmt, kind, seed=CASES.index((kind, fmt)))
    path = write(tmp_path, fmt, kind, src)
    with caplog.at_level(logging.INFO, logger="bljust.nets"):
        up = Upstream.from_checkpoint(path).eval()  # architecture told from the keys and shapes
    assert up.config["encoder_embed_dim"] == E and up.num_layers == LAYERS and up.kind == kind
    heads = len(HEAD_KEYS[fmt, kind])
    assert (f"dropped {heads} {fmt} keys" in caplog.text) == (heads > 0), caplog.text
    assert_same_tensors(up.model.state_dict(), reference(fmt, kind, src, refs[kind]))
    before = hidden(up)
    assert all(bool(torch.isfinite(h).all()) and float(h.std()) > 0.1 for h in before)
    with torch.no_grad():  # bljust's layer-by-layer forward is torchaudio's (WavLM's 320-bucket bias too)
        ta_layers, _ = up.model.extract_features(WAV)
    for i, (a, b) in enumerate(zip(ta_layers, before[1:])):
        assert float((a - b).abs().max()) == 0.0, f"layer {i + 1} differs from torchaudio's forward"

    # export: what LASER writes (upstream.pth), converted back to the layout it came from
    save_upstream(up, str(tmp_path / "upstream.pth"))
    dst = str(tmp_path / f"exported_{fmt}.pt")
    assert conv.convert_checkpoint(str(tmp_path / "upstream.pth"), dst, fmt) == kind
    exported = conv.unwrap(conv.read_checkpoint(dst))
    assert_same_tensors(exported, expected_export(fmt, kind, src))
    assert conv.detect_format(exported) == fmt and conv.detect_kind(exported) == kind
    nan_fill(up)
    up.load_state(exported, where=dst)
    after = hidden(up)
    for i, (a, b) in enumerate(zip(before, after)):
        assert float((a - b).abs().max()) == 0.0, f"hidden state {i}"

    # export into the original: the file as published (cfg, heads, key spelling), upstream replaced
    like = str(tmp_path / f"like_{fmt}.pt")
    assert conv.convert_checkpoint(str(tmp_path / "upstream.pth"), like, fmt, like=path) == kind
    got = conv.read_checkpoint(like)
    if fmt == "fairseq":  # cfg, args, extra_state, ...
        assert got.keys() == fairseq_checkpoint(kind, {}).keys()
        assert {k: v for k, v in got.items() if k != "model"} == {
            k: v for k, v in fairseq_checkpoint(kind, {}).items() if k != "model"}
    assert_same_tensors(conv.unwrap(got), src)


@pytest.mark.parametrize("kind", ["hubert", "wavlm"])
def test_layout_variants_load_the_same_tensors(big_tmp, caplog, refs, kind):
    """Other spellings of the same checkpoints: newer weight-norm names (transformers' and torch's
    parametrisation, also in model.safetensors), the *ForCTC wrapper with its CTC head, a fairseq
    fine-tuned checkpoint, a torchaudio state dict saved by today's torch; and the export back
    into the first of them."""
    tmp_path = big_tmp
    hf = native("huggingface", kind, seed=20)
    want = reference("huggingface", kind, hf, refs[kind])

    def renamed(sd, old, new):
        return {k.replace(old, new): v for k, v in sd.items()}

    from safetensors.torch import load_file, save_file
    d = tmp_path / "hf_new"
    d.mkdir()
    save_file(renamed(renamed(hf, "conv.weight_g", "conv." + WEIGHT_NORM["parametrized"][0]),
                      "conv.weight_v", "conv." + WEIGHT_NORM["parametrized"][1]), str(d / "model.safetensors"))
    ctc = {f"{kind}.{k}": v for k, v in hf.items()}
    ctc.update({"lm_head.weight": torch.randn(32, E), "lm_head.bias": torch.randn(32)})
    torch.save(ctc, tmp_path / "ctc.bin")
    fs = native("fairseq", kind, seed=21)
    ft = {f"w2v_encoder.w2v_model.{k}": v for k, v in fs.items()}
    ft.update({"w2v_encoder.proj.weight": torch.randn(32, E), "w2v_encoder.proj.bias": torch.randn(32)})
    torch.save({"args": None, "cfg": {"model": {"_name": f"{kind}_ctc"}}, "model": ft}, tmp_path / "ft.pt")
    ta = native("torchaudio", kind, seed=22, weight_norm="parametrized")
    torch.save(ta, tmp_path / "ta.pth")

    up = Upstream(f"{kind}_base")
    cases = [(str(d), lambda: want, 1), (str(tmp_path / "ctc.bin"), lambda: want, 3),
             (str(tmp_path / "ft.pt"), lambda: reference("fairseq", kind, fs, refs[kind]),
              len(HEAD_KEYS["fairseq", kind]) + 2),
             (str(tmp_path / "ta.pth"), lambda: reference("torchaudio", kind, ta, refs[kind]), 0)]
    for path, ref, dropped in cases:
        nan_fill(up)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="bljust.nets"):
            up.load_state(conv.unwrap(conv.read_checkpoint(path)), where=path)
        assert (f"dropped {dropped} " in caplog.text) == (dropped > 0), (path, caplog.text)
        assert_same_tensors(up.model.state_dict(), ref())

    # back into the newer Hugging Face file: safetensors, parametrised names and masked_spec_embed kept
    up.load_state(conv.unwrap(conv.read_checkpoint(str(d))))
    save_upstream(up, str(tmp_path / "upstream.pth"))
    (tmp_path / "out").mkdir()
    out = str(tmp_path / "out" / "model.safetensors")
    conv.convert_checkpoint(str(tmp_path / "upstream.pth"), out, "huggingface", like=str(d))
    assert_same_tensors(load_file(out), load_file(str(d / "model.safetensors")))
