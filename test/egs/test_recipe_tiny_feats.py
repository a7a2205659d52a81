"""The tiny mini_synth recipe on compressed fbank arks and on raw audio (fbank in the loader or on the device)."""
import os
import re

import pytest
import torch
import yaml

from recipe_helpers import make_recipe_copy, run_recipe

TINY = ["--local_data_opts", "--tiny true --nj 2", "--nbpe", "48", "--beam_size", "4"]
BOTH = ["--asr_configs", "conf/tuning/train_tiny.yaml conf/tuning/train_bljust_tiny.yaml"]


def scored_sets(results: str):
    """The sets of the WER table of a RESULTS.md."""
    wer = results.split("### WER", 1)[1].split("###", 1)[0]
    return sorted(re.findall(r"decode_beam4_model/(dev|test)\|\d+\|\d+\|", wer))


@pytest.fixture(scope="module")
def raw_run(tmp_path_factory):
    d = make_recipe_copy(tmp_path_factory.mktemp("raw"))
    p = run_recipe(d, *TINY, *BOTH, "--feats_type", "raw")
    return d, p


def test_raw_input_trains_bljust_decodes_and_scores(raw_run):
    d, _ = raw_run
    dump = os.path.join(d, "dump", "raw")
    assert not os.path.isdir(os.path.join(d, "dump", "fbank"))
    arks = [f for r, _, fs in os.walk(dump) for f in fs if f.endswith(".ark") and f != "cmvn.ark"]
    assert arks == []  # no feature dump at all
    for x in ("train", "train_unlab", "dev"):
        for name in ("wav.scp", "utt2num_samples", "utt2num_frames", "feats_conf.yaml"):
            assert os.path.isfile(os.path.join(dump, x, name)), (x, name)
        assert open(os.path.join(dump, x, "feats_type")).read() == "raw\n"
    for tag in ("asr_train_tiny", "asr_train_bljust_tiny"):
        results = open(os.path.join(d, "exp", tag, "RESULTS.md")).read()
        assert scored_sets(results) == ["dev", "test"], results
    log = open(os.path.join(dump, "org", "train", "log", "compute_cmvn.log")).read()
    assert "CMVN stats over 60 of 60 utterances" in log  # the default sample covers mini_synth's training set


def test_raw_and_dumped_input_train_the_same_model(raw_run):
    """The loader's fbank of raw audio is the dump's, bit for bit: the same run gives the same weights."""
    d, _ = raw_run
    tiny = ("--asr_configs", "conf/tuning/train_tiny.yaml", "--stop_stage", "6")
    run_recipe(d, *TINY, *tiny, "--stage", "3", "--asr_tag", "tiny_fbank")
    # two loader workers: the raw reader travels to them and computes the fbank there
    run_recipe(d, *TINY, *tiny, "--stage", "6", "--feats_type", "raw", "--asr_tag", "tiny_raw_workers",
               "--asr_args", "--trainer.num_workers 2")
    load = lambda tag: torch.load(os.path.join(d, "exp", tag, "model.pth"), weights_only=True)  # noqa: E731
    raw, dumped, workers = load("asr_train_tiny"), load("asr_tiny_fbank"), load("asr_tiny_raw_workers")
    assert sorted(raw) == sorted(dumped) == sorted(workers)
    for k in raw:
        assert torch.equal(raw[k], dumped[k]) and torch.equal(raw[k], workers[k]), k


def test_raw_stage_3_rerun_skips(raw_run):
    d, _ = raw_run
    p = run_recipe(d, *TINY, *BOTH, "--feats_type", "raw", "--stage", "3", "--stop_stage", "3")
    assert "already done" in p.stderr


def test_raw_input_with_the_fbank_on_the_device(raw_run):
    d, _ = raw_run  # supervised and BL-JUST (both streams) with the fbank computed by the trainer
    run_recipe(d, *TINY, *BOTH, "--feats_type", "raw", "--stage", "6", "--expdir", "exp_on_device",
               "--asr_args", "--frontend.on_device true")
    for tag in ("asr_train_tiny", "asr_train_bljust_tiny"):
        exp = os.path.join(d, "exp_on_device", tag)
        conf = yaml.safe_load(open(os.path.join(exp, "config.yaml")))
        assert conf["frontend"] == {"type": "fbank", "on_device": True}
        assert "the fbank is computed on cpu" in open(os.path.join(exp, "train.log")).read()
        assert scored_sets(open(os.path.join(exp, "RESULTS.md")).read()) == ["dev", "test"]


def test_compress_needs_dumped_fbank(raw_run):
    d, _ = raw_run
    p = run_recipe(d, *TINY, "--feats_type", "raw", "--compress", "true", "--stage", "3", "--stop_stage", "3",
                   check=False)
    assert p.returncode != 0 and "--compress true applies to --feats_type fbank" in p.stderr


def test_compressed_arks_train_decode_and_score(tmp_path):
    d = make_recipe_copy(tmp_path)
    run_recipe(d, *TINY, "--asr_configs", "conf/tuning/train_tiny.yaml", "--compress", "true")
    dump = os.path.join(d, "dump", "fbank_compressed")
    scp = os.path.join(dump, "org", "train", "feats.scp")
    ark, off = open(scp).readline().split()[1].rsplit(":", 1)
    with open(os.path.join(d, ark), "rb") as f:  # the scp's paths are relative to the recipe
        f.seek(int(off))
        assert f.read(5) == b"\0BCM "  # Kaldi's compressed matrix
    assert len(open(scp).readlines()) == 60
    results = open(os.path.join(d, "exp", "asr_train_tiny", "RESULTS.md")).read()
    assert scored_sets(results) == ["dev", "test"], results
