"""The config schema and loader: YAML + command-line overrides, and every error naming file and key."""
import dataclasses
import logging
import os
import subprocess
import sys

import pytest
import yaml

from bljust.train import schema as S
from bljust.train.config import ConfigError, _section_type, hints, load_config, parse_overrides, run_with_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def error_of(path, overrides=(), kind="train"):
    with pytest.raises(ConfigError) as e:
        load_config(path, list(overrides), kind)
    return str(e.value)


def test_overrides_types_and_forms():
    assert parse_overrides(["--a.b", "3", "--c=x", "--d", "true", "--e", "1e-3", "--f", "[1, 2]", "--g", "null"]) == [
        ("a.b", 3), ("c", "x"), ("d", True), ("e", 1e-3), ("f", [1, 2]), ("g", None)]


def test_yaml_then_cli(tmp_path):
    p = write(tmp_path, yaml.safe_dump({"encoder": {"num_layers": 7, "d_model": 512}, "optim": {"lr": 0.002}}))
    c = load_config(p, ["--encoder.num_layers", "3", "--trainer.max_epoch=4", "--output_dir", "exp/x",
                        "--optim.betas", "[0.9, 0.98]", "--variant", "0.30"])
    assert c["encoder"]["num_layers"] == 3 and c["encoder"]["d_model"] == 512
    assert c["encoder"]["kernel_size"] == 15  # untouched default survives
    assert c["optim"] == {"name": "adamw", "lr": 0.002, "weight_decay": 1e-6, "betas": [0.9, 0.98]}
    assert c["trainer"]["max_epoch"] == 4 and c["output_dir"] == "exp/x"
    assert c["variant"] == "0.30"  # a string key keeps the text as typed


def test_stage9_sweep_entry_overrides(tmp_path):
    """asr.sh turns conf/x.yaml:bilevel.gamma_max=0.3:bilevel.budget_fractions=[0.1,0.6,0.3] into options."""
    p = write(tmp_path, "method: bilevel\n")
    c = load_config(p, ["--bilevel.budget_passes", "1200", "--bilevel.gamma_max", "0.3", "--bilevel.budget_fractions",
                        "[0.1,0.6,0.3]", "--variant", "gamma_max=0.3, budget_fractions=[0.1,0.6,0.3]"])
    assert c["bilevel"]["gamma_max"] == 0.3 and c["bilevel"]["budget_fractions"] == [0.1, 0.6, 0.3]
    assert c["bilevel"]["budget_passes"] == 1200 and c["variant"].startswith("gamma_max=0.3")


def _sections():
    """(entry point, dotted section, its first key) for every section of every schema."""
    out = []

    def walk(kind, cls, path):
        for f in dataclasses.fields(cls):
            sec, _ = _section_type(hints(cls)[f.name])
            if sec is not None:
                out.append((kind, path + f.name, dataclasses.fields(sec)[0].name))
                walk(kind, sec, path + f.name + ".")
    for kind, cls in S.SCHEMAS.items():
        out.append((kind, "", dataclasses.fields(cls)[0].name))
        walk(kind, cls, "")
    return out


SECTIONS = _sections()


def test_every_training_section_is_covered():
    names = {s for k, s, _ in SECTIONS if k == "train"}
    assert {"encoder", "specaug", "ctc", "unsup", "bilevel", "optim", "optim_ll", "optim_ul", "optim_ft", "scheduler",
            "scheduler_ll", "scheduler_ul", "scheduler_ft", "batching", "unlab_batching", "trainer"} <= names
    assert {"superb", "ssft", "pretrain"} == {k for k, _, _ in SECTIONS} - {"train"}


@pytest.mark.parametrize("kind,section,key", SECTIONS, ids=[f"{k}:{s or 'top'}" for k, s, _ in SECTIONS])
def test_unknown_key_names_file_key_and_suggestion(tmp_path, kind, section, key):
    typo = key + key[-1]
    text = yaml.safe_dump({typo: 1}) if not section else yaml.safe_dump(
        _nest(section.split("."), {typo: 1}))
    p = write(tmp_path, text)
    dotted = f"{section}.{typo}" if section else typo
    assert error_of(p, kind=kind) == f"{p}: {dotted}: unknown key (did you mean '{key}'?)"
    # the same typo on the command line names the option
    assert error_of(None, [f"--{dotted}", "1"], kind).startswith(f"command line: --{dotted}: unknown key (did you mean")


def _nest(parts, leaf):
    return {parts[0]: _nest(parts[1:], leaf)} if parts else leaf


@pytest.mark.parametrize("text,key,expected", [
    ("optim: {lr: fast}", "optim.lr", "expected a number, got 'fast'"),
    ("trainer: {max_epoch: five}", "trainer.max_epoch", "expected an integer, got 'five'"),
    ("optim: {betas: 0.9}", "optim.betas", "expected a list of 2 numbers or null, got 0.9"),
    ('batching: {batch_bins: "3000x"}', "batching.batch_bins", "expected an integer, got '3000x'"),
    ("trainer: {amp: fp32}", "trainer.amp", "expected one of none, bf16, fp16, got 'fp32'"),
    ("encoder: {conv_norm: group_norm}", "encoder.conv_norm", "expected one of layer_norm, batch_norm"),
    ("method: bilevel\nbilevel: {budget_fractions: [0.5, 0.5]}", "bilevel.budget_fractions",
     "expected a list of 3 numbers"),
    ("method: semi", "method", "expected one of supervised, bilevel, got 'semi'"),
    ("encoder: 5", "encoder", "expected a section with keys impl, d_model"),
])
def test_wrong_type_names_file_key_value_and_type(tmp_path, text, key, expected):
    p = write(tmp_path, text + "\n")
    assert error_of(p).startswith(f"{p}: {key}: {expected}")


@pytest.mark.parametrize("kind,text,key", [
    ("ssft", "trainer: {max_updates: 1e3}", "trainer.max_updates"),
    ("superb", "model: {lstm_dim: big}", "model.lstm_dim"),
    ("pretrain", "fbank: {num_mel_bins: 80.5}", "fbank.num_mel_bins"),
])
def test_wrong_types_in_the_other_entry_points(tmp_path, kind, text, key):
    p = write(tmp_path, text + "\n")
    assert error_of(p, kind=kind).startswith(f"{p}: {key}: expected")


def test_fractional_epochs_are_an_error_not_rounded(tmp_path):
    p = write(tmp_path, "trainer:\n  max_epoch: 1.9\n")
    assert error_of(p) == f"{p}: trainer.max_epoch: expected an integer, got 1.9"
    assert error_of(None, ["--trainer.max_epoch", "1.9"]) == \
        "command line: --trainer.max_epoch: expected an integer, got 1.9"


@pytest.mark.parametrize("value", ['"false"', "'true'", '"no"'])
def test_string_booleans_are_errors(tmp_path, value):
    p = write(tmp_path, f"trainer:\n  deterministic: {value}\n")
    msg = error_of(p)
    assert msg.startswith(f"{p}: trainer.deterministic: expected true or false, got ") and "without quotes" in msg


def test_real_booleans_from_yaml_and_command_line(tmp_path):
    p = write(tmp_path, "trainer:\n  deterministic: false\n")
    assert load_config(p)["trainer"]["deterministic"] is False
    assert load_config(None, ["--trainer.deterministic", "false"])["trainer"]["deterministic"] is False
    assert load_config(None, ["--trainer.deterministic", "true"])["trainer"]["deterministic"] is True


@pytest.mark.parametrize("text,key,why", [
    # the bilevel trainer has its own schedule and batch streams
    ("method: bilevel\ntrainer: {accum_grad: 1}", "trainer.accum_grad", "method is 'bilevel'"),
    ("method: bilevel\ntrainer: {max_epoch: 3}", "trainer.max_epoch", "method is 'bilevel'"),
    ("method: bilevel\ntrainer: {num_workers: 2}", "trainer.num_workers", "method is 'bilevel'"),
    ("method: bilevel\noptim: {lr: 0.1}", "optim", "method is 'bilevel'"),
    ("method: bilevel\nscheduler: {name: constant}", "scheduler", "method is 'bilevel'"),
    # the supervised trainer has no lower level
    ("unsup: {name: bestrq}", "unsup", "method is 'supervised'"),
    ("bilevel: {n1: 3}", "bilevel", "method is 'supervised'"),
    ("optim_ll: {lr: 0.1}", "optim_ll", "method is 'supervised'"),
    ("scheduler_ft: {name: warmuplr}", "scheduler_ft", "method is 'supervised'"),
    ("unlab_batching: {batch_bins: 10}", "unlab_batching", "method is 'supervised'"),
    # an optimiser's, schedule's or loss's keys belong to its name
    ("optim: {name: adamw, momentum: 0.9}", "optim.momentum", "optim.name is 'adamw'"),
    ("optim: {name: sgd, betas: [0.9, 0.98]}", "optim.betas", "optim.name is 'sgd'"),
    ("scheduler: {name: constant, warmup_steps: 10}", "scheduler.warmup_steps", "scheduler.name is 'constant'"),
    ("method: bilevel\nunsup: {name: cpc, codebook_size: 64}", "unsup.codebook_size", "unsup.name is 'cpc'"),
])
def test_keys_the_chosen_method_ignores_are_errors(tmp_path, text, key, why):
    p = write(tmp_path, text + "\n")
    assert error_of(p).startswith(f"{p}: {key}: not used when {why}")


def test_ignored_keys_in_the_other_entry_points(tmp_path):
    p = write(tmp_path, "task: pr\nmodel: {lstm_dim: 64}\n")
    assert error_of(p, kind="superb").startswith(f"{p}: model.lstm_dim: not used when task is 'pr'")
    assert error_of(None, ["--scheduler.name", "constant", "--scheduler.warmup_steps", "5"], "ssft").startswith(
        "command line: --scheduler.warmup_steps: not used when scheduler.name is 'constant'")


def test_a_name_change_on_the_command_line_blames_the_file_key(tmp_path):
    p = write(tmp_path, "optim: {name: adamw, betas: [0.9, 0.98]}\n")
    assert error_of(p, ["--optim.name", "sgd"]).startswith(f"{p}: optim.betas: not used when optim.name is 'sgd'")


def test_grad_clip_is_read_by_every_trainer_and_unlabeled_data_by_every_recipe(tmp_path):
    """trainer.grad_clip is honoured by the bilevel trainer (no error); recipes pass --unlab_data_dir to
    supervised runs too, so that key stays accepted."""
    p = write(tmp_path, "method: bilevel\ntrainer: {grad_clip: 2.5}\n")
    assert load_config(p)["trainer"]["grad_clip"] == 2.5
    assert load_config(None, ["--unlab_data_dir", "dump/unlab"])["unlab_data_dir"] == "dump/unlab"
    assert "grad_clip" not in load_config(p)["bilevel"]
    assert error_of(None, ["--bilevel.grad_clip", "1"]).startswith("command line: --bilevel.grad_clip: unknown key")


def test_variant_sections_hold_only_the_chosen_names_keys_with_library_defaults():
    c = load_config(None, ["--method", "bilevel", "--unsup.name", "bestrq", "--unsup.codebook_size", "64",
                           "--scheduler_ll.name", "warmuplr"])
    import inspect

    from bljust.losses.bestrq import BestRQLoss

    sig = inspect.signature(BestRQLoss.__init__).parameters
    assert c["unsup"] == {"name": "bestrq", "codebook_size": 64, **{k: sig[k].default for k in (
        "codebook_dim", "mask_prob", "mask_span", "noise_std", "seed")}}
    assert c["scheduler_ll"] == {"name": "warmuplr", "warmup_steps": 25000, "restarts": []}
    assert c["unlab_batching"] == {"batch_bins": 20000, "max_batch_size": 256}  # as batching


def test_pbgd_defaults_are_defined_once():
    """The bilevel section's defaults are PBGDConfig's: changing one changes the other."""
    conf = load_config(None, ["--method", "bilevel"])["bilevel"]
    for f in dataclasses.fields(S.PBGDConfig):
        if f.name != "grad_clip":
            assert conf[f.name] == f.default, f.name


def test_bilevel_fp16_is_an_error_and_amp_on_cpu_is_logged(tmp_path, caplog):
    p = write(tmp_path, "method: bilevel\ntrainer: {amp: fp16}\n")
    assert error_of(p).startswith(f"{p}: trainer.amp: the bilevel trainer supports none or bf16")
    with caplog.at_level(logging.INFO):
        assert load_config(None, ["--trainer.amp", "bf16"])["trainer"]["amp"] == "bf16"
    assert "trainer.amp bf16 has no effect without a GPU (ngpu 0): training runs in fp32" in caplog.text


def test_max_steps_means_stop_early_in_every_trainer():
    for kind in S.SCHEMAS:
        tr = {f.name: f for f in dataclasses.fields(hints(S.SCHEMAS[kind])["trainer"])}
        assert tr["max_steps"].default == 0 and "stop after" in tr["max_steps"].metadata["help"], kind
        assert ("max_updates" in tr) == (kind != "train"), kind  # the schedule's length has its own name
    assert error_of(None, ["--trainer.stop_steps", "3"], "superb") == (
        "command line: --trainer.stop_steps: unknown key (renamed trainer.max_steps: stop early, as in every trainer)")


def test_an_old_superb_schedule_length_is_not_silently_reread(tmp_path):
    """SUPERB configs once gave the schedule's length as trainer.max_steps; alone it is now an error."""
    p = write(tmp_path, "trainer: {max_steps: 800}\n")
    assert error_of(p, kind="superb").startswith(f"{p}: trainer.max_steps: stops early without changing the schedule")
    c = load_config(p, ["--trainer.max_updates", "800"], "superb")["trainer"]
    assert (c["max_updates"], c["max_steps"]) == (800, 800)


@pytest.mark.parametrize("module,kind", [("train", "train"), ("ssft", "ssft"), ("train_superb", "superb"),
                                         ("pretrain_upstream", "pretrain")])
def test_entry_points_report_one_line_and_exit_1(tmp_path, capsys, module, kind):
    import importlib

    main = importlib.import_module(f"bljust.bin.{module}").main
    p = write(tmp_path, "trainer:\n  max_stepz: 3\n")
    assert main(["--config", p]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{p}: trainer.max_stepz: unknown key (did you mean 'max_steps'?)" in err[0], err
    assert main(["--config", p, "--debug"]) == 1  # --debug: the same error, with its traceback
    assert "Traceback" in capsys.readouterr().err
    assert main([f"--config={p}"]) == 1 and "trainer.max_stepz" in capsys.readouterr().err


def test_ngpu_without_a_gpu_is_one_line(capsys):
    import torch

    from bljust.bin.train import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["--ngpu", "1", "--output_dir", "unused"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ngpu 1, but torch sees no CUDA device" in err[0]


def test_python_m_train_exits_1_without_traceback(tmp_path):
    p = write(tmp_path, "encoder:\n  num_haeds: 4\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "bljust.bin.train", "--config", p], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{p}: encoder.num_haeds: unknown key (did you mean 'num_heads'?)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_run_with_config_turns_any_failure_into_one_line(capsys):
    def boom(conf, verbose):
        raise RuntimeError("disk full\nwhile writing")

    assert run_with_config([], "train", "doc", boom) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("disk full while writing")


def test_docs_list_every_key():
    from bljust.train.config_doc import markdown, rows

    doc = open(os.path.join(ROOT, "docs", "config.md"), encoding="utf-8").read()
    assert doc == markdown(), "docs/config.md is stale: regenerate it (see bljust/train/config_doc.py)"
    for kind, cls in S.SCHEMAS.items():
        for k, *_ in rows(cls, cls()):
            assert f"`{k}`" in doc, (kind, k)


@pytest.mark.parametrize("kind", ["ssft", "superb", "pretrain"])
def test_upstream_architecture_is_checked(tmp_path, kind):
    arch = write(tmp_path, "kind: hubert\nencoder_num_layerz: 2\n", "arch.yaml")
    assert error_of(None, ["--upstream.arch", arch], kind) == (
        f"{arch}: encoder_num_layerz: unknown upstream builder argument (did you mean 'encoder_num_layers'?)")
    p = write(tmp_path, "upstream:\n  arch: {kind: hubret}\n")
    assert error_of(p, kind=kind) == f"{p}: upstream.arch.kind: expected one of hubert, wavlm, got 'hubret'"
    assert error_of(None, ["--upstream.arch", "hubert_bsae"], kind) == (
        "command line: --upstream.arch: unknown architecture 'hubert_bsae' (did you mean 'hubert_base'?)")
    assert error_of(None, ["--upstream.arch", str(tmp_path / "none.yaml")], kind).startswith(
        "command line: --upstream.arch: cannot read")
    shipped = os.path.join(ROOT, "egs", "TEMPLATE", "ssft1", "conf", "upstream_tiny.yaml")
    assert load_config(None, ["--upstream.arch", shipped], kind)["upstream"]["arch"] == shipped
