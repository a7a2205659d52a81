"""The mini_synth LASER recipe end to end at its tiny size (about 2 minutes on 2 cores):
every stage, the before/after table, replay scripts, resumed stages; the LibriSpeech
recipe's scripts parse and reach the same driver."""
import os
import re
import subprocess

import pytest

from recipe_helpers import make_recipe_copy as _copy, run_recipe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EGS = os.path.join(ROOT, "egs")


def make_recipe_copy(dst, corpus="mini_synth") -> str:
    return _copy(dst, corpus, "ssft1")


def run(d, *args, check=True):
    return run_recipe(d, *args, check=check, timeout=900)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = make_recipe_copy(tmp_path_factory.mktemp("recipe"))
    return d, run(d, "--tiny", "true")


def test_all_stages_write_the_before_after_table(tiny_run):
    d, _ = tiny_run
    table = open(os.path.join(d, "exp", "RESULTS.md")).read()
    assert "PER test" in table and "WER test" in table, table
    assert re.search(r"\| before \| [\d.]+ \| [\d.]+ \|", table), table
    assert re.search(r"\| after \| [\d.]+ \| [\d.]+ \|", table), table
    for f in ("pretrain_tiny/upstream.pth", "ssft_tiny/upstream.pth", "ssft_tiny/loss.png",
              "superb_after_pr/decode_greedy/test/score_wer/result.txt",
              "superb_before_asr/decode_greedy/test/score_wer/result.txt"):
        assert os.path.isfile(os.path.join(d, "exp", f)), f


def test_stages_leave_replay_scripts_and_resume(tiny_run):
    d, _ = tiny_run
    text = open(os.path.join(d, "exp", "ssft_tiny", "run.sh")).read()
    assert "--stage 4 --stop_stage 4" in text and "ssft.sh" in text
    p = run(d, "--tiny", "true", "--stage", "4", "--stop_stage", "4")
    log = open(os.path.join(d, "exp", "ssft_tiny", "train.log")).read()
    assert "resumed at update" in log and "finished at update 6/6" in log


def test_missing_stage_and_missing_phonemes_fail_clearly(tiny_run):
    d, _ = tiny_run
    p = run(d, "--tiny", "true", "--stage", "9", check=False)
    assert p.returncode != 0 and "do not exist" in p.stderr
    p = run(d, "--tiny", "true", "--stage", "5", "--stop_stage", "5", "--test_sets", "train_unlab", check=False)
    assert p.returncode != 0 and "data/train_unlab/text not found" in p.stderr
    p = run(d, "--tiny", "true", "--stage", "5", "--stop_stage", "5", "--test_sets", "train_unlab",
            "--superb_tasks", "pr", check=False)
    assert p.returncode != 0 and "needs data/train_unlab/text.phn" in p.stderr


def test_librispeech_recipe_parses_and_reaches_the_driver(tmp_path):
    d = make_recipe_copy(tmp_path, "librispeech")
    for script in ("run.sh", "ssft.sh"):
        assert subprocess.run(["bash", "-n", script], cwd=d).returncode == 0
    p = run(d, "--stage", "6", "--stop_stage", "6")
    assert "Stage 6" in p.stderr and os.path.isfile(os.path.join(d, "exp", "RESULTS.md"))
    p = run(d, "--stage", "3", "--stop_stage", "3", "--upstream_ckpt", "missing.pt", check=False)
    assert p.returncode != 0 and "missing.pt" in p.stderr



def test_laser_study_runs_every_part_at_tiny_size(tmp_path):
    """laser_study.sh end to end at CI size (its own tiny corpus and configs): pre-training
    keeping upstreams, one LASER setting keeping upstreams, the PR probe on every point with
    two seeds (the curve over LASER: every upstream it kept), the ASR probe before, along and after,
    the tables; a rerun skips the probes already scored."""
    d = make_recipe_copy(tmp_path / "study")
    os.symlink(os.path.join(EGS, "mini_synth", "ssft1", "laser_study.sh"), os.path.join(d, "laser_study.sh"))
    pre = tmp_path / "pretrain_study_tiny.yaml"
    pre.write_text(open(os.path.join(d, "conf", "pretrain_tiny.yaml")).read().replace(
        "save_interval: 100}", "save_interval: 100, upstream_interval: 5}"))
    las = tmp_path / "ssft_study_tiny.yaml"
    las.write_text(open(os.path.join(d, "conf", "ssft_tiny.yaml")).read().replace(
        "save_interval: 50,", "save_interval: 50, upstream_interval: 2,"))
    args = ["--local_data_opts", "--nj 1 --tiny true", "--pretrain_config", str(pre), "--settings", str(las),
            "--seeds", "1 2", "--pretrain_points", "5", "--superb_pr_config", "conf/superb_pr_tiny.yaml",
            "--asr_settings", "tiny", "--asr_seeds", "1", "--asr_points", "2", "--superb_asr_config", "conf/superb_asr_tiny.yaml",
            "--superb_args", "--trainer.valid_interval 10"]
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def study(*more, check=True):
        p = subprocess.run(["./laser_study.sh", *args, *more], cwd=d, capture_output=True, text=True, env=env,
                           timeout=900)
        assert not check or p.returncode == 0, p.stderr[-6000:]
        return p

    study()
    table = open(os.path.join(d, "exp", "laser_study", "RESULTS.md")).read()
    assert re.search(r"\| before LASER \| 1,2 \| [\d.]+ / [\d.]+ \| [\d.]+ ± [\d.]+ \| - \|", table), table
    assert re.search(r"\| tiny \(lr 0.0002, last 2 layers, 6 updates\) \| 1,2 \| .* \| [+-][\d.]+% \|", table), table
    curve = table[table.index("## PR curve over LASER fine-tuning: tiny"):]
    for u in (0, 2, 4, 6):  # no --points: every upstream the LASER run kept (interval 2), and the last
        assert re.search(rf"^\| {u} \| [\d.]+ \| [\d.]+ \|", curve, re.M), (u, curve)
    assert re.search(r"^\| 2 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", curve, re.M), curve  # diagnostics
    assert re.search(r"^\| 5 \| [\d.]+ \| [\d.]+ \|", table, re.M), table  # the pre-training curve
    asr = table[table.index("## Before / after LASER (ASR probe"):]  # WER before and after, seed 1
    assert re.search(r"\| before LASER \| 1 \| [\d.]+ \| [\d.]+ \| - \|", asr), asr
    assert re.search(r"\| tiny \(lr 0.0002, last 2 layers, 6 updates\) \| 1 \| .* \| [+-][\d.]+% \|", asr), asr
    wer = table[table.index("## WER curve over LASER fine-tuning: tiny (ASR probe, seed 1)"):]
    for u in (0, 2, 6):
        assert re.search(rf"^\| {u} \| [\d.]+ \| [\d.]+ \|$", wer, re.M), (u, wer)
    p = study("--stage", "4", "--stop_stage", "4")
    assert p.stderr.count("done before") == 10 and "training" not in p.stderr, p.stderr[-3000:]
    p = study("--settings", "nosuch", check=False)
    assert p.returncode == 2 and "conf/ssft_study_nosuch.yaml not found" in p.stderr
    p = study("--asr_settings", "other", check=False)
    assert p.returncode == 2 and "--asr_settings: other is not one of --settings (tiny)" in p.stderr
