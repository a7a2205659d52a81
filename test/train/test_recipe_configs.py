"""Every shipped training config loads through the schema, keeps the values it writes, and builds."""
import glob
import os

import pytest
import torch
import yaml

from bljust.train.bilevel_trainer import build_unsup_loss, phase_steps
from bljust.train.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "egs", "TEMPLATE", "asr1", "conf", "tuning", "*.yaml")))
ARCH_FILES = ("upstream_tiny.yaml",)  # an upstream architecture (upstream.arch), not a training config


def kind_of(path):
    """The entry point a shipped config is for."""
    if os.sep + "asr1" + os.sep in path:
        return "train"
    name = os.path.basename(path)
    for prefix, kind in (("ssft_", "ssft"), ("superb_", "superb"), ("pretrain_", "pretrain")):
        if name.startswith(prefix):
            return kind
    return None


def every_shipped_yaml():
    found = set()
    for pattern in ("egs/*/*/conf/*.yaml", "egs/*/*/conf/tuning/*.yaml"):
        found.update(os.path.realpath(p) for p in glob.glob(os.path.join(ROOT, pattern)))
    return sorted(found)


SHIPPED = every_shipped_yaml()


def test_there_are_configs():
    assert len(CONFIGS) >= 10
    assert len(SHIPPED) >= 25


def test_every_shipped_yaml_is_a_known_kind():
    unknown = [p for p in SHIPPED if kind_of(p) is None and os.path.basename(p) not in ARCH_FILES]
    assert not unknown


def _leaves(d, path=""):
    for k, v in d.items():
        if isinstance(v, dict) and k != "arch":
            yield from _leaves(v, path + k + ".")
        else:
            yield path + k, v


@pytest.mark.parametrize("path", [p for p in SHIPPED if kind_of(p)], ids=lambda p: os.path.relpath(p, ROOT))
def test_shipped_config_loads_with_the_values_it_writes(path, monkeypatch):
    """Every key a config writes resolves to that value (nothing dropped, renamed or rounded)."""
    monkeypatch.chdir(os.path.dirname(os.path.dirname(path)))  # the recipe folder: conf/... paths resolve
    with open(path, encoding="utf-8") as f:
        written = dict(_leaves(yaml.safe_load(f)))
    resolved = dict(_leaves(load_config(path, (), kind_of(path))))
    assert written
    for k, v in written.items():
        assert k in resolved, k
        assert resolved[k] == v and type(resolved[k]) in (type(v), float), (k, v, resolved[k])


def test_upstream_architecture_file_builds():
    from bljust.train.upstream_io import load_upstream

    arch = os.path.join(ROOT, "egs", "TEMPLATE", "ssft1", "conf", "upstream_tiny.yaml")
    up = load_upstream(None, arch)
    assert up.num_layers == 4 and up.hidden_dim == 96


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_loads(path):
    conf = load_config(path)
    assert conf["method"] in ("supervised", "bilevel")
    if conf["method"] == "bilevel":
        st = phase_steps(conf["bilevel"], n_lab=100, n_unlab=1000)
        assert sum(st.values()) > 0
        assert conf["unsup"]["name"] in ("cpc", "bestrq", "laser")


@pytest.mark.parametrize("path", [p for p in CONFIGS if "tiny" in p or "small" in p], ids=os.path.basename)
def test_small_configs_build(path):
    from bljust.nets.asr_model import build_asr_model

    conf = load_config(path)
    torch.manual_seed(0)
    model = build_asr_model(conf, 80, 50).eval()
    feats, lens = torch.randn(2, 120, 80), torch.tensor([120, 90])
    loss, _ = model(feats, lens, torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([3, 2]))
    assert torch.isfinite(loss), path
    if conf["method"] == "bilevel":
        g, _ = build_unsup_loss(conf["unsup"], model)(model, feats, lens)
        assert torch.isfinite(g), path


@pytest.mark.parametrize("recipe", ["mini_synth", "librispeech", "tedlium2"])
def test_recipe_configs_exist(recipe):
    d = os.path.join(ROOT, "egs", recipe, "asr1", "conf")
    for name in ("train_supervised.yaml", "train_bljust.yaml"):
        assert os.path.isfile(os.path.join(d, name)), name


@pytest.mark.parametrize("recipe", ["mini_synth", "librispeech", "tedlium2"])
def test_comparison_entries_of_each_recipe_load_with_their_overrides(recipe):
    """Each --compare_configs entry of run.sh (a config, or config:key=value:... for a sweep point)
    names a shipped config and overrides keys that exist, as stage 9 will pass them."""
    import re

    d = os.path.join(ROOT, "egs", recipe, "asr1")
    text = open(os.path.join(d, "run.sh"), encoding="utf-8").read()
    entries = re.search(r'--compare_configs\s+"([^"]+)"', text).group(1).split()
    assert len(entries) >= 4
    for entry in entries:
        path, *kvs = entry.split(":")
        assert os.path.isfile(os.path.join(d, path)), entry
        overrides = [x for kv in kvs for x in ("--" + kv.split("=", 1)[0], kv.split("=", 1)[1])]
        conf = load_config(os.path.join(d, path), overrides)
        assert conf["method"] == "bilevel", entry  # the comparison runs on the bilevel trainer


def _entry_config(d, entry):
    path, *kvs = entry.split(":")
    assert os.path.isfile(os.path.join(d, path)), entry
    overrides = [x for kv in kvs for x in ("--" + kv.split("=", 1)[0], kv.split("=", 1)[1])]
    return load_config(os.path.join(d, path), overrides)


def test_every_stage9_entry_of_mini_synth_loads_sweeps_and_topline_included():
    """run.sh's sweep files, references and topline are entries stage 9 can train."""
    import re

    d = os.path.join(ROOT, "egs", "mini_synth", "asr1")
    text = open(os.path.join(d, "run.sh"), encoding="utf-8").read()
    configs = re.search(r'--compare_configs\s+"([^"]+)"', text).group(1).split()
    refs = re.search(r'--compare_reference\s+"([^"]+)"', text).group(1).split()
    assert refs and set(refs) <= set(configs)
    sweeps = re.search(r"--compare_sweeps\s+(\S+)", text).group(1).split()
    points = [line.strip() for s in sweeps for line in open(os.path.join(d, s), encoding="utf-8")
              if line.strip() and not line.startswith("#")]
    assert len(points) >= 8  # at least as many as BL-JUST's recorded sweep
    topline = re.search(r"--compare_topline\s+(\S+)", text).group(1)
    for entry in configs + points + [topline]:
        assert _entry_config(d, entry)["method"] == "bilevel", entry
    # the sweep covers peak rate x schedule, a warm restart among them
    assert {p.count("lr=") for p in points} == {0, 1} and any("restarts=" in p for p in points)


@pytest.mark.parametrize("passes", [1200, 3600])
def test_the_schedule_control_gets_bljusts_supervised_steps_and_no_unsupervised_one(passes):
    from bljust.train.bilevel import PBGDConfig

    d = os.path.join(ROOT, "egs", "mini_synth", "asr1")
    pcfg = {}
    for name in ("train_control_small.yaml", "train_bljust_bestrq_small.yaml", "train_bljust_cpc_small.yaml"):
        bc = dict(_entry_config(d, f"conf/tuning/{name}")["bilevel"], budget_passes=passes)
        known = set(PBGDConfig.__dataclass_fields__) - {"n1", "n2", "n3", "grad_clip"}
        pcfg[name] = PBGDConfig(**{k: v for k, v in bc.items() if k in known}, **phase_steps(bc, 100, 1000))
    ctl = pcfg.pop("train_control_small.yaml")
    assert ctl.n1 == 0 and not ctl.lower_level
    for bl in pcfg.values():
        assert (ctl.n2, ctl.n3) == (bl.n2, bl.n3)  # sup passes: n2 + n3 for both (reuse step, K = 1)
