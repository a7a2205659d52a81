import argparse
import logging

import numpy as np
import pytest
import torch

from bljust.bin import convert_upstream as convert_bin
from bljust.nets import upstream_convert as conv
from bljust.nets.upstream import LaserEncoder, LaserHead, Upstream

D = 32


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(kind: str, extractor: str = "group_norm") -> dict:
    cfg = dict(kind=kind, extractor_mode=extractor, extractor_conv_layer_config=[(D, 10, 5), (D, 3, 2), (D, 2, 2)],
               extractor_conv_bias=extractor == "layer_norm", encoder_embed_dim=D, encoder_projection_dropout=0.0,
               encoder_pos_conv_kernel=16, encoder_pos_conv_groups=4, encoder_num_layers=2, encoder_num_heads=4,
               encoder_attention_dropout=0.0, encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.0,
               encoder_dropout=0.0, encoder_layer_norm_first=False, encoder_layer_drop=0.0)
    if kind == "wavlm":
        cfg.update(encoder_num_buckets=16, encoder_max_distance=32)
    return cfg


def make(kind: str, seed: int, extractor: str = "group_norm") -> Upstream:
    torch.manual_seed(seed)
    up = Upstream(tiny(kind, extractor)).eval()
    with torch.no_grad():  # biases and norms start at 0/1: randomise so a mis-mapped key shows
        for p in up.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return up


def wavs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3200, generator=g), torch.tensor([3200, 2500])


@pytest.mark.parametrize("kind", ["hubert", "wavlm"])
def test_hidden_states_every_layer_and_lengths(kind):
    up = make(kind, 0)
    x, lens = wavs()
    hs, out_lens = up(x, lens)
    assert len(hs) == up.num_layers + 1 == 3
    assert all(h.shape == (2, hs[0].size(1), D) for h in hs)
    assert out_lens.tolist() == [159, 124]  # conv stack (10,5),(3,2),(2,2) on 3200 and 2500 samples
    ref, _ = up.model.extract_features(x[:1])  # torchaudio's own path, no padding
    for a, b in zip(ref, hs[1:]):
        torch.testing.assert_close(b[:1], a)
    rep, _ = up.representation(x, lens)
    torch.testing.assert_close(rep, hs[-1])
    assert Upstream(tiny(kind), representation_layer=1).representation_layer == 1


@pytest.mark.parametrize("kind,extractor", [("hubert", "layer_norm"), ("wavlm", "layer_norm"),
                                            ("hubert", "group_norm"), ("wavlm", "group_norm")])
def test_padding_does_not_change_valid_frames(kind, extractor):
    # a group-norm CNN (base models) normalises over the padding too, unless run per utterance
    up = make(kind, 1, extractor)
    up.exact_padding = extractor == "group_norm"
    x, lens = wavs()
    batch, blens = up(x, lens)
    single, slens = up(x[1:, :2500], lens[1:])
    n = int(slens[0])
    assert n == int(blens[1])
    for a, b in zip(single, batch):
        torch.testing.assert_close(b[1, :n], a[0], atol=1e-4, rtol=1e-4)
    if extractor == "group_norm":
        up.exact_padding = False
        assert not torch.allclose(up(x, lens)[0][-1][1, :n], single[-1][0], atol=1e-3)


# every layout for both models, and each CNN normalisation (fairseq names them differently) once per model
FORMAT_CASES = ([("hubert", f, "group_norm") for f in conv.FORMATS] + [("wavlm", f, "layer_norm") for f in conv.FORMATS]
                + [("hubert", "fairseq", "layer_norm"), ("wavlm", "fairseq", "group_norm")])


@pytest.mark.parametrize("kind,fmt,extractor", FORMAT_CASES)
def test_load_each_checkpoint_format_gives_identical_outputs(tmp_path, kind, fmt, extractor):
    src = make(kind, 2, extractor)
    sd = conv.export_state_dict(src.model.state_dict(), fmt, kind,
                                prefix=f"{kind}." if fmt == "huggingface" else "")
    if fmt == "fairseq":  # HuBERT's pre-training heads ride along and must be dropped
        obj = {"model": dict(sd, label_embs_concat=torch.zeros(3, 4), **{"final_proj.weight": torch.zeros(4, D)}),
               "cfg": {"model": {"_name": kind}}}
    elif fmt == "huggingface":
        obj = dict(sd, **{f"{kind}.masked_spec_embed": torch.zeros(D)})
    else:
        obj = sd
    path = tmp_path / ("pytorch_model.bin" if fmt == "huggingface" else "ckpt.pt")
    torch.save(obj, path)
    assert conv.detect_format(conv.unwrap(conv.read_checkpoint(str(path)))) == fmt
    dst = Upstream.from_checkpoint(str(tmp_path if fmt == "huggingface" else path), arch=tiny(kind, extractor)).eval()
    x, lens = wavs()
    with torch.no_grad():
        for a, b in zip(src(x, lens)[0], dst(x, lens)[0]):
            assert torch.equal(a, b)


def test_known_key_names_of_each_layout():
    """Names as the original toolkits write them, so the mapping is not only self-consistent."""
    hub = make("hubert", 3)
    wlm = make("wavlm", 3, "layer_norm")
    fs_h = conv.export_state_dict(hub.model.state_dict(), "fairseq", "hubert")
    for k in ["feature_extractor.conv_layers.0.0.weight", "feature_extractor.conv_layers.0.2.weight",
              "feature_extractor.conv_layers.2.0.weight", "layer_norm.weight", "post_extract_proj.bias",
              "encoder.pos_conv.0.weight_g", "encoder.pos_conv.0.weight_v", "encoder.pos_conv.0.bias",
              "encoder.layer_norm.weight", "encoder.layers.1.self_attn.k_proj.weight",
              "encoder.layers.1.self_attn.out_proj.bias", "encoder.layers.0.self_attn_layer_norm.weight",
              "encoder.layers.0.fc1.weight", "encoder.layers.1.fc2.bias", "encoder.layers.1.final_layer_norm.bias"]:
        assert k in fs_h, k
    fs_w = conv.export_state_dict(wlm.model.state_dict(), "fairseq", "wavlm")
    for k in ["feature_extractor.conv_layers.1.2.1.weight", "feature_extractor.conv_layers.1.0.bias",
              "encoder.layers.0.self_attn.relative_attention_bias.weight", "encoder.layers.1.self_attn.grep_a",
              "encoder.layers.1.self_attn.grep_linear.weight", "encoder.layers.0.self_attn.q_proj.weight"]:
        assert k in fs_w, k
    assert "encoder.layers.1.self_attn.relative_attention_bias.weight" not in fs_w  # first layer only
    hf_h = conv.export_state_dict(hub.model.state_dict(), "huggingface", "hubert", prefix="hubert.")
    for k in ["hubert.feature_extractor.conv_layers.0.conv.weight",
              "hubert.feature_extractor.conv_layers.0.layer_norm.bias", "hubert.feature_projection.layer_norm.weight",
              "hubert.feature_projection.projection.weight",
              "hubert.encoder.pos_conv_embed.conv.weight_g", "hubert.encoder.layer_norm.bias",
              "hubert.encoder.layers.1.attention.k_proj.weight", "hubert.encoder.layers.0.layer_norm.weight",
              "hubert.encoder.layers.0.feed_forward.intermediate_dense.weight",
              "hubert.encoder.layers.1.feed_forward.output_dense.bias",
              "hubert.encoder.layers.1.final_layer_norm.weight"]:
        assert k in hf_h, k
    hf_w = conv.export_state_dict(wlm.model.state_dict(), "huggingface", "wavlm", prefix="wavlm.")
    for k in ["wavlm.encoder.layers.0.attention.rel_attn_embed.weight",
              "wavlm.encoder.layers.1.attention.gru_rel_pos_const",
              "wavlm.encoder.layers.1.attention.gru_rel_pos_linear.weight",
              "wavlm.encoder.layers.1.attention.v_proj.bias", "wavlm.encoder.layers.0.attention.out_proj.weight"]:
        assert k in hf_w, k
    # q, k, v are stacked in that order inside torchaudio's WavLM attention
    att = wlm.model.encoder.transformer.layers[1].attention.attention
    assert torch.equal(hf_w["wavlm.encoder.layers.1.attention.q_proj.weight"], att.in_proj_weight[:D])
    assert torch.equal(hf_w["wavlm.encoder.layers.1.attention.v_proj.weight"], att.in_proj_weight[2 * D:])
    assert torch.equal(fs_w["encoder.layers.1.self_attn.k_proj.bias"], att.in_proj_bias[D:2 * D])
    assert torch.equal(hf_h["hubert.encoder.layers.1.attention.k_proj.weight"],
                       hub.model.encoder.transformer.layers[1].attention.k_proj.weight)


def test_strict_loading_names_missing_and_unexpected_keys():
    up = make("hubert", 4)
    sd = conv.export_state_dict(up.model.state_dict(), "fairseq", "hubert")
    broken = dict(sd, **{"encoder.layers.0.self_attn.extra.weight": torch.zeros(1)})
    del broken["encoder.layers.1.fc1.bias"]
    with pytest.raises(conv.CheckpointError) as e:
        make("hubert", 5).load_state(broken)
    assert "encoder.transformer.layers.1.feed_forward.intermediate_dense.bias" in str(e.value)
    assert "encoder.layers.0.self_attn.extra.weight" in str(e.value)
    wl = conv.export_state_dict(make("wavlm", 4).model.state_dict(), "huggingface", "wavlm")
    with pytest.raises(conv.CheckpointError, match="unexpected"):
        up.load_state(wl)


class ConfigObject:
    """Stands for a pickled config class (fairseq's omegaconf DictConfig)."""

    def __init__(self) -> None:
        self.arch = "hubert"


def test_namespace_loads_safely_other_objects_need_trust(tmp_path, caplog):
    up = make("hubert", 6)
    sd = conv.export_state_dict(up.model.state_dict(), "fairseq", "hubert")
    ns_path = tmp_path / "hubert_fairseq_args.pt"
    torch.save({"args": argparse.Namespace(arch="hubert"), "model": sd,
                "extra_state": {"best": np.float64(1.5), "num_updates": np.int64(3)}}, ns_path)
    with caplog.at_level(logging.WARNING):  # an old fairseq checkpoint: argparse.Namespace is allow-listed
        up1 = Upstream.from_checkpoint(str(ns_path), arch=tiny("hubert"))
    assert "weights_only=False" not in caplog.text
    path = tmp_path / "hubert_fairseq_cfg.pt"
    torch.save({"cfg": ConfigObject(), "model": sd}, path)
    with pytest.raises(conv.CheckpointError, match="--trust_checkpoint"):
        Upstream.from_checkpoint(str(path), arch=tiny("hubert"))
    with caplog.at_level(logging.WARNING):
        up2 = Upstream.from_checkpoint(str(path), arch=tiny("hubert"), trust=True)
    assert "weights_only=False" in caplog.text
    for u in (up1, up2):
        assert torch.equal(u.model.encoder.feature_projection.projection.weight,
                           up.model.encoder.feature_projection.projection.weight)


def test_freeze_except_last_trains_only_top_layers():
    up = make("wavlm", 7).train()
    up.freeze_except_last(1)
    trainable = {n for n, p in up.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.encoder.transformer.layers.1.") for n in trainable)
    enc = LaserEncoder(up, out_dim=8, train_last=1)
    x, lens = wavs()
    z, zl = enc(x, lens)
    assert z.shape == (2, int(zl.max()), 8)
    z.sum().backward()
    for n, p in up.named_parameters():
        assert (p.grad is not None) == (n in trainable), n
    assert enc.head.proj.weight.grad is not None
    hs, _ = up(x, lens)
    assert not hs[1].requires_grad and hs[2].requires_grad  # frozen layers keep no graph
    with pytest.raises(ValueError):
        up.freeze_except_last(3)


def test_laser_head_unit_norm_per_frame():
    z = LaserHead(D, 16)(torch.randn(3, 7, D))
    assert z.shape == (3, 7, 16)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(3, 7))


def test_convert_command_writes_a_loadable_checkpoint(tmp_path):
    up = make("wavlm", 8)
    src = tmp_path / "wavlm.pt"
    torch.save({"model": up.state_dict()}, src)  # bljust's own layout: Upstream keys under 'model'
    dst = tmp_path / "wavlm_fairseq.pt"
    assert convert_bin.main([str(src), str(dst), "--to", "fairseq"]) == 0
    obj = torch.load(dst, weights_only=True)
    assert "encoder.layers.0.self_attn.grep_linear.weight" in obj["model"]
    back = Upstream.from_checkpoint(str(dst), arch=tiny("wavlm")).eval()
    x, lens = wavs()
    with torch.no_grad():
        assert torch.equal(back(x, lens)[0][-1], up(x, lens)[0][-1])


def test_convert_library_call_and_a_bad_file(tmp_path, capfd):
    up = make("hubert", 8)
    src = tmp_path / "hubert.pt"
    torch.save({"model": up.state_dict()}, src)
    assert conv.convert_checkpoint(str(src), str(tmp_path / "hf.pt"), "huggingface") == "hubert"
    assert conv.detect_format(torch.load(tmp_path / "hf.pt", weights_only=True)) == "huggingface"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert convert_bin.main([str(bad), str(tmp_path / "o.pt"), "--to", "fairseq"]) == 1
    err = capfd.readouterr().err
    assert "bad.pt" in err and "Traceback" not in err and not (tmp_path / "o.pt").exists()


def test_export_like_the_original_keeps_its_config_heads_and_spelling(tmp_path, capfd):
    """A fairseq file with 'cfg' and the pre-training heads (fairseq and WavLM's code load strictly)
    or a Hugging Face *ForCTC file: only the upstream's tensors change."""
    orig, tuned = make("hubert", 9), make("hubert", 10)  # tuned: what LASER made of orig
    up_path = tmp_path / "upstream.pth"
    torch.save({"model": tuned.model.state_dict()}, up_path)
    heads = {"label_embs_concat": torch.randn(7, 4), "final_proj.weight": torch.randn(4, D),
             "final_proj.bias": torch.randn(4), "mask_emb": torch.randn(D)}
    fs = dict(conv.export_state_dict(orig.model.state_dict(), "fairseq", "hubert"), **heads)
    meta = {"args": argparse.Namespace(arch="hubert", label_rate=50), "cfg": {"model": {"_name": "hubert"}},
            "extra_state": {"num_updates": np.int64(3), "best": np.float64(1.5)}}
    torch.save(dict(meta, model=fs), tmp_path / "orig.pt")
    assert convert_bin.main([str(up_path), str(tmp_path / "plain.pt"), "--to", "fairseq"]) == 0
    assert "--like" in capfd.readouterr().err  # a plain fairseq export says what it lacks
    assert convert_bin.main([str(up_path), str(tmp_path / "out.pt"), "--to", "fairseq",
                             "--like", str(tmp_path / "orig.pt")]) == 0
    out = conv.read_checkpoint(str(tmp_path / "out.pt"))
    assert vars(out["args"]) == vars(meta["args"]) and out["cfg"] == meta["cfg"]
    assert out["extra_state"] == meta["extra_state"] and sorted(out["model"]) == sorted(fs)
    for k, v in heads.items():
        assert torch.equal(out["model"][k], v), k
    want = conv.export_state_dict(tuned.model.state_dict(), "fairseq", "hubert")
    for k, v in want.items():
        assert torch.equal(out["model"][k], v), k
    back = Upstream.from_checkpoint(str(tmp_path / "out.pt"), arch=tiny("hubert")).eval()
    x, lens = wavs()
    with torch.no_grad():
        assert torch.equal(back(x, lens)[0][-1], tuned(x, lens)[0][-1])

    # Hugging Face HubertForCTC with newer transformers' weight-norm names
    hf = conv.export_state_dict(orig.model.state_dict(), "huggingface", "hubert", prefix="hubert.")
    hf = {k.replace("conv.weight_g", "conv.parametrizations.weight.original0")
          .replace("conv.weight_v", "conv.parametrizations.weight.original1"): v for k, v in hf.items()}
    hf.update({"lm_head.weight": torch.randn(5, D), "lm_head.bias": torch.randn(5)})
    torch.save(hf, tmp_path / "pytorch_model.bin")
    conv.convert_checkpoint(str(up_path), str(tmp_path / "hf_out.bin"), "huggingface",
                            like=str(tmp_path / "pytorch_model.bin"))
    got = torch.load(tmp_path / "hf_out.bin", weights_only=True)
    assert sorted(got) == sorted(hf) and torch.equal(got["lm_head.bias"], hf["lm_head.bias"])
    assert torch.equal(got["hubert.encoder.pos_conv_embed.conv.parametrizations.weight.original1"],
                       tuned.model.encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original1)


def test_export_like_refuses_a_template_that_is_not_the_original(tmp_path, capfd):
    up = make("hubert", 11)
    up_path = tmp_path / "upstream.pth"
    torch.save({"model": up.model.state_dict()}, up_path)
    fs = conv.export_state_dict(up.model.state_dict(), "fairseq", "hubert")
    bad = {"wavlm.pt": conv.export_state_dict(make("wavlm", 11).model.state_dict(), "fairseq", "wavlm"),
           "short.pt": {k: v for k, v in fs.items() if k != "encoder.layers.1.fc2.bias"},
           "other_shape.pt": dict(fs, **{"encoder.layers.1.fc2.bias": torch.zeros(D + 1)}),
           "extra.pt": dict(fs, **{"encoder.layers.1.adapter.weight": torch.zeros(2)}),
           "hf.pt": conv.export_state_dict(up.model.state_dict(), "huggingface", "hubert")}
    why = {"wavlm.pt": "wavlm checkpoint", "short.pt": "lacks 1", "other_shape.pt": "has shape (33,)",
           "extra.pt": "adapter.weight is not part", "hf.pt": "huggingface layout"}
    for name, sd in bad.items():
        torch.save({"model": sd}, tmp_path / name)
        out = tmp_path / f"out_{name}"
        assert convert_bin.main([str(up_path), str(out), "--to", "fairseq", "--like", str(tmp_path / name)]) == 1
        err = capfd.readouterr().err
        assert name in err and why[name] in err and "Traceback" not in err, err
        assert not out.exists()
    # a template trusted to unpickle a config object: bljust writes only what loads without code
    torch.save({"cfg": ConfigObject(), "model": fs}, tmp_path / "objects.pt")
    out = tmp_path / "out_objects.pt"
    assert convert_bin.main([str(up_path), str(out), "--to", "fairseq", "--like", str(tmp_path / "objects.pt"),
                             "--trust_checkpoint"]) == 1
    err = capfd.readouterr().err
    assert "objects.pt" in err and "ConfigObject cannot be saved" in err and not out.exists(), err


def test_export_to_safetensors(tmp_path, capfd):
    """Hugging Face's model.safetensors (WavLM's q, k, v are views of torchaudio's stacked tensor),
    with the metadata transformers requires; a fairseq layout does not fit in one."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    up = make("wavlm", 12)
    torch.save({"model": up.model.state_dict()}, tmp_path / "upstream.pth")
    d = tmp_path / "hf"
    assert convert_bin.main([str(tmp_path / "upstream.pth"), str(d / "model.safetensors"), "--to", "huggingface"]) == 0
    got = load_file(str(d / "model.safetensors"))
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"}
    want = conv.export_state_dict(up.model.state_dict(), "huggingface", "wavlm")
    assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)
    back = Upstream.from_checkpoint(str(d), arch=tiny("wavlm")).eval()
    x, lens = wavs()
    with torch.no_grad():
        assert torch.equal(back(x, lens)[0][-1], up(x, lens)[0][-1])
    assert convert_bin.main([str(tmp_path / "upstream.pth"), str(tmp_path / "f.safetensors"), "--to", "fairseq"]) == 1
    err = capfd.readouterr().err
    assert "f.safetensors" in err and "tensors only" in err and not (tmp_path / "f.safetensors").exists()
