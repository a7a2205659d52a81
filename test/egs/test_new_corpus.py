"""A new corpus as the README's "Add your own corpus" says, and the driver's honesty about its stages.

A tiny 8 kHz corpus (espeak-ng voices, resampled with sox) in its own folder layout; a
recipe made with egs/TEMPLATE/asr1/setup.sh, run end to end with run.sh and options on
its command line, as the README shows. Then the same recipe's stage 3 with changed,
broken and restored inputs.
"""
import os
import re
import shutil
import subprocess

import pytest

from newcomer_corpus import make_corpus
from recipe_helpers import EGS

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="needs espeak-ng and sox (tools/setup.sh installs them)")

OPTS = ["--fs", "8000", "--nj", "2", "--inference_nj", "2", "--token_type", "char",
        "--asr_configs", "conf/tuning/train_tiny.yaml", "--asr_args", "--trainer.max_epoch 2",
        "--decode_method", "greedy"]


def run(d, corpus, *args, check=True):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", CORPUS_DIR=corpus)
    p = subprocess.run(["./run.sh", *OPTS, *args], cwd=d, env=env, capture_output=True, text=True, timeout=900)
    if check and p.returncode != 0:
        raise AssertionError(f"run.sh {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-6000:]}")
    return p


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("newcomer")
    corpus = make_corpus(str(root / "mycorpus"))
    d = str(root / "egs" / "mycorpus" / "asr1")
    subprocess.run([os.path.join(EGS, "TEMPLATE", "asr1", "setup.sh"), d], check=True, capture_output=True)
    p = run(d, corpus)
    return d, corpus, p


def test_a_new_8khz_corpus_runs_end_to_end_from_the_templates(recipe):
    d, _, p = recipe
    assert "Successfully finished stages 1..8" in p.stderr
    for x in ("train", "dev", "test"):
        assert os.path.isfile(os.path.join(d, "data", x, "wav.scp"))
    assert open(os.path.join(d, "dump/fbank/org/train/feat_dim")).read().strip() == "40"  # the 8 kHz default
    conf = open(os.path.join(d, "dump/fbank/train/feats_conf.yaml")).read()
    assert "fs: 8000" in conf and "cmvn_type: global" in conf
    results = open(os.path.join(d, "exp", "RESULTS.md")).read()
    assert re.search(r"decode_greedy_model/test\|4\|", results), results
    assert "tokenizer coverage of data/dev" in p.stderr
    assert "mel filters" not in p.stderr  # the defaults at 8 kHz do not degenerate
    log = open(os.path.join(d, "exp", "asr_train_tiny", "train.log")).read()
    assert "40 dims at 8000 Hz, global CMVN" in log and "tokenizer coverage of train set" in log


@pytest.mark.parametrize("args, message", [
    (["--stage", "three"], "--stage must be a stage number"),
    (["--stage", "5", "--stop_stage", "3"], "--stage 5 is after --stop_stage 3"),
    (["--stop_stage", "2x"], "--stop_stage must be a stage number"),
    (["--resample", "yes"], "option --resample takes true or false"),
    (["--cmvn_type", "cepstral"], "--cmvn_type must be global, speaker or utterance"),
    (["--force_stage", "all"], "--force_stage takes stage numbers"),
])
def test_bad_stage_options_fail_before_anything_runs(recipe, args, message):
    d, corpus, _ = recipe
    p = run(d, corpus, *args, check=False)
    assert p.returncode != 0
    assert message in p.stderr
    assert "Successfully finished" not in p.stderr and "Stage " not in p.stderr


def test_stage3_reruns_when_its_inputs_change_and_refuses_a_failed_set(recipe):
    d, corpus, _ = recipe
    stage3 = ["--stage", "3", "--stop_stage", "3"]
    p = run(d, corpus, *stage3)
    assert p.stderr.count("already done (same inputs and options)") == 3
    # a corrected wav.scp: that set is extracted again, the others are not
    wav_scp = os.path.join(d, "data", "dev", "wav.scp")
    good = open(wav_scp).read()
    first, rest = good.split("\n", 1)
    utt, path = first.split(" ", 1)
    with open(wav_scp, "w") as f:
        f.write(f"{utt} sox {path} -t wav - |\n{rest}")
    p = run(d, corpus, *stage3)
    assert "dump/fbank/org/dev: inputs changed since it was done (data/dev/wav.scp changed)" in p.stderr
    assert p.stderr.count("already done (same inputs and options)") == 2
    # every audio file of a set gone: stage 3 fails, lists why, and leaves no marker
    with open(wav_scp, "w") as f:
        f.write("".join(f"{line.split()[0]} {corpus}/missing/{i}.wav\n" for i, line in enumerate(good.splitlines())))
    p = run(d, corpus, *stage3, check=False)
    assert p.returncode != 0
    assert "no utterance has features" in p.stderr and "audio file not found" in p.stderr
    assert "Successfully finished" not in p.stderr
    assert not os.path.exists(os.path.join(d, "dump/fbank/org/dev/.done"))
    with open(wav_scp, "w") as f:  # restored: extracted again, then done
        f.write(good)
    p = run(d, corpus, *stage3)
    assert p.stderr.count("already done (same inputs and options)") == 2
    assert os.path.exists(os.path.join(d, "dump/fbank/org/dev/.done"))
    # 8 kHz audio at --fs 16000 fails with the options that fix it; --resample true passes through
    p = run(d, corpus, *stage3, "--fs", "16000", check=False)
    assert p.returncode != 0 and "Successfully finished" not in p.stderr
    assert "sample rate 8000 Hz, expected 16000 Hz (run asr.sh with --fs 8000, or with --resample true" in p.stderr
    assert not os.path.exists(os.path.join(d, "dump/fbank/org/train/.done"))  # the failed set is not done
    # changed options rerun every set (train had no marker left; dev and test say what changed)
    p = run(d, corpus, *stage3, "--fs", "16000", "--resample", "true", "--cmvn_type", "speaker")
    assert p.stderr.count("option cmvn_type: global -> speaker") == 2
    assert "option fs: 8000 -> 16000" in p.stderr and "already done" not in p.stderr
    for x in ("train", "dev", "test"):
        conf = open(os.path.join(d, f"dump/fbank/org/{x}/feats_conf.yaml")).read()
        assert "cmvn_type: speaker" in conf and "fs: 16000" in conf and "resample: true" in conf
        assert open(os.path.join(d, f"dump/fbank/org/{x}/feat_dim")).read().strip() == "80"
        assert os.path.isfile(os.path.join(d, f"dump/fbank/org/{x}/cmvn_speaker.ark"))
    # --force_stage redoes done stages
    p = run(d, corpus, *stage3, "--fs", "16000", "--resample", "true", "--cmvn_type", "speaker", "--force_stage", "3")
    assert p.stderr.count("--force_stage 3: extracting again") == 3
    p = run(d, corpus, "--stage", "5", "--stop_stage", "5")
    assert "is up to date; skipping" in p.stderr
    p = run(d, corpus, "--stage", "5", "--stop_stage", "5", "--force_stage", "5")
    assert "--force_stage 5: training the tokenizer again" in p.stderr and "is up to date" not in p.stderr
