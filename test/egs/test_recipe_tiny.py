"""The mini_synth recipe end to end at its tiny size: every stage, replay scripts, re-runs."""
import os
import re

import pytest

from recipe_helpers import make_recipe_copy, run_recipe

TINY = ["--local_data_opts", "--tiny true --nj 2",
        "--asr_configs", "conf/tuning/train_tiny.yaml conf/tuning/train_bljust_tiny.yaml",
        "--nbpe", "48", "--beam_size", "4"]


def run(d, *args, check=True):
    return run_recipe(d, *args, check=check)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = make_recipe_copy(tmp_path_factory.mktemp("recipe"))
    p = run(d, *TINY)
    return d, p


def test_all_stages_run_and_write_results(tiny_run):
    d, p = tiny_run
    exp = os.path.join(d, "exp")
    assert sorted(t for t in os.listdir(exp) if t.startswith("asr_")) == ["asr_train_bljust_tiny", "asr_train_tiny"]
    for tag in ("asr_train_tiny", "asr_train_bljust_tiny"):
        results = open(os.path.join(exp, tag, "RESULTS.md")).read()
        assert re.search(r"/test\s*\|", results), results
        for metric in ("WER", "CER", "TER"):
            assert metric in results
    summary = open(os.path.join(exp, "RESULTS.md")).read()
    assert "asr_train_tiny" in summary and "asr_train_bljust_tiny" in summary
    # run.sh sets up stage 9: the summary says in one line where the evidence is
    assert re.search(r"^One seed per model\. .* is stage 9's table: `\./run\.sh --stage 9 --stop_stage 9` writes "
                     r"exp/compare/RESULTS\.md\.$", summary, re.M), summary[:600]
    result_txt = [os.path.join(r, f) for r, _, fs in os.walk(exp) for f in fs if f == "result.txt"]
    assert any("score_wer" in r for r in result_txt)
    assert "Sum/Avg" in open([r for r in result_txt if "score_wer" in r][0]).read()


def test_each_stage_leaves_a_replay_script(tiny_run):
    d, _ = tiny_run
    replays = [os.path.join(r, "run.sh") for r, _, fs in os.walk(os.path.join(d, "exp")) if "run.sh" in fs]
    replays += [os.path.join(r, "run.sh") for r, _, fs in os.walk(os.path.join(d, "dump")) if "run.sh" in fs]
    assert replays
    text = open(replays[0]).read()
    assert "--stage" in text and "--stop_stage" in text and "asr.sh" in text


def test_rerunning_a_done_stage_skips_it(tiny_run):
    d, _ = tiny_run
    p = run(d, *TINY, "--stage", "3", "--stop_stage", "3")
    assert "already done" in p.stderr


def test_rerunning_training_appends_to_its_log_and_a_changed_model_is_refused(tiny_run):
    d, _ = tiny_run
    exp = os.path.join(d, "exp", "asr_train_tiny")
    first = open(os.path.join(exp, "train.log")).read()
    model = open(os.path.join(exp, "model.pth"), "rb").read()
    run(d, *TINY, "--stage", "6", "--stop_stage", "6")
    log = open(os.path.join(exp, "train.log")).read()
    assert log.startswith(first) and log.count("# Started at") == 2 and "resumed at step" in log[len(first):]
    conf = open(os.path.join(exp, "config.yaml")).read()
    p = run(d, *TINY, "--stage", "6", "--stop_stage", "6", "--asr_args", "--encoder.d_model 16", check=False)
    assert p.returncode != 0
    assert open(os.path.join(exp, "config.yaml")).read() == conf
    assert open(os.path.join(exp, "model.pth"), "rb").read() == model
    log = open(os.path.join(exp, "train.log")).read()
    assert log.count("# Started at") == 3 and "encoder.d_model: " in log and "--resume false" in log


def test_decoding_again_with_the_same_model_skips_and_a_new_model_decodes(tiny_run):
    d, _ = tiny_run
    p = run(d, *TINY, "--stage", "7", "--stop_stage", "7")
    assert p.stderr.count("already decoded with this model") == 4  # 2 experiments x dev, test
    exp = os.path.join(d, "exp", "asr_train_tiny")
    ckpts = sorted(f for f in os.listdir(exp) if f.endswith("epoch.pth"))
    model = os.path.join(exp, "model.pth")
    target = os.path.join(exp, os.readlink(model)) if os.path.islink(model) else model
    saved = open(target, "rb").read()
    try:
        with open(target, "wb") as f:  # a different model under the same name
            f.write(open(os.path.join(exp, ckpts[0]), "rb").read())
        p = run(d, *TINY, "--stage", "7", "--stop_stage", "7")
        assert p.stderr.count("already decoded with this model") == 2  # only the BL-JUST experiment
    finally:
        with open(target, "wb") as f:
            f.write(saved)
    p = run(d, *TINY, "--stage", "7", "--stop_stage", "7")  # back to the first model: decoded again
    assert p.stderr.count("already decoded with this model") == 2


def test_asking_for_a_stage_that_does_not_exist_fails_clearly(tiny_run):
    d, _ = tiny_run
    p = run(d, *TINY, "--stage", "42", check=False)
    assert p.returncode != 0
    assert "do not exist" in p.stderr


# run.sh's stage-9 defaults (seeds, sweep, topline, references, budget curve) switched off
PLAIN_COMPARE = ["--compare_seeds", "1", "--compare_sweeps", "", "--compare_reference", "", "--compare_topline", "",
                 "--compare_budget_scale", ""]


def test_comparison_stage_writes_one_table(tiny_run):
    d, _ = tiny_run
    cfg = "conf/tuning/train_bljust_tiny.yaml"
    sweep = cfg + ":bilevel.gamma_max=0.3:bilevel.reuse_lower_grad=true"
    run(d, *TINY, "--stage", "9", "--stop_stage", "9", *PLAIN_COMPARE, "--compare_configs", f"{cfg} {sweep}",
        "--compare_passes", "40")
    table = open(os.path.join(d, "exp", "compare", "RESULTS.md")).read()
    rows = [line for line in table.splitlines() if line.startswith("|BL-JUST")]
    assert len(rows) == 2, table
    assert rows[0].startswith("|BL-JUST (BEST-RQ), tiny|1|")
    assert rows[1].startswith("|BL-JUST (BEST-RQ), tiny [gamma_max=0.3, reuse_lower_grad=true]|1|")
    for row in rows:
        assert row.count("|") == 9  # method, seeds, dev WER, test WER, wall time, passes, steps, phases
        total = int(re.search(r"(\d+) \+ (\d+) = (\d+)", row).group(3))
        assert abs(total - 40) <= 3  # the budget of encoder passes
    # the sweep point trained with its overrides, in a folder of its own (one run per seed)
    exp = os.path.join(d, "exp", "compare", "p40", "train_bljust_tiny_gamma_max-0.3_reuse_lower_grad-true", "seed0")
    conf = open(os.path.join(exp, "config.yaml")).read()
    assert "gamma_max: 0.3" in conf and "reuse_lower_grad: true" in conf
    # reusing the lower level's gradient saves one unsupervised pass per joint step: more of them fit
    joint = [int(re.search(r"\d+ / (\d+) / \d+", row).group(1)) for row in rows]
    assert joint[1] > joint[0], rows


def test_comparison_stage_rejects_a_malformed_sweep_entry(tiny_run):
    d, _ = tiny_run
    p = run(d, *TINY, "--stage", "9", "--stop_stage", "9", *PLAIN_COMPARE,
            "--compare_configs", "conf/tuning/train_bljust_tiny.yaml:bilevel.k", check=False)
    assert p.returncode != 0
    assert "'bilevel.k' in --compare_configs entry" in p.stderr
    p = run(d, *TINY, "--stage", "9", "--stop_stage", "9", *PLAIN_COMPARE, "--compare_configs", "conf/nope.yaml",
            check=False)
    assert p.returncode != 0 and "conf/nope.yaml" in p.stderr and "does not exist" in p.stderr
    for opt, bad in (("--compare_seeds", "0"), ("--compare_budget_scale", "1.5"), ("--compare_nj", "x")):
        p = run(d, *TINY, "--stage", "9", "--stop_stage", "9", *PLAIN_COMPARE, opt, bad,
                "--compare_configs", "conf/tuning/train_bljust_tiny.yaml", check=False)
        assert p.returncode == 2 and f"{opt} must be" in p.stderr, p.stderr[-500:]


def test_default_run_packs_both_models_and_transcribes_a_test_recording(tiny_run, tmp_path, monkeypatch):
    import shutil


    from bljust import Speech2Text
    from bljust.features.audio import read_audio
    from bljust.utils.fileio import read_table

    d, p = tiny_run
    exp = os.path.join(d, "exp")
    zips = [os.path.join(exp, t, "packed", f"{t}.zip") for t in ("asr_train_tiny", "asr_train_bljust_tiny")]
    assert all(os.path.isfile(z) for z in zips), os.listdir(exp)
    assert p.stdout.count("transcribed with") == 2
    key, spec = next(iter(read_table(os.path.join(d, "data", "test", "wav.scp")).items()))
    printed = [line for line in p.stdout.splitlines() if line.startswith(key + " ") or line == key]
    assert len(printed) == 2
    # a copy in a fresh folder (no recipe, no exp dir) gives the recipe's own decoding of that utterance
    monkeypatch.chdir(d)  # wav.scp paths are relative to the recipe folder
    x, rate = read_audio(spec)
    monkeypatch.chdir(tmp_path)
    for z, line in zip(zips, printed):
        shutil.copy(z, tmp_path / "m.zip")
        recipe_hyp = read_table(os.path.join(os.path.dirname(os.path.dirname(z)), "decode_beam4_model", "test", "text"),
                                allow_empty_value=True)[key]
        asr = Speech2Text.from_pretrained("m.zip", decode_method="beam", beam_size=4)
        assert asr.prepare(x, rate, key, int16_scale=True).shape == x.shape
        assert asr.transcribe([x])[0][0][0] == recipe_hyp
        greedy = Speech2Text.from_pretrained("m.zip")
        assert line == f"{key} {greedy.transcribe([x])[0][0][0]}".rstrip()
