"""asr.sh stage 3 with one and two jobs: the same features, the global CMVN from the jobs' own
stats (no second pass over the features), and a job that fails fails the stage."""
import os
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from bljust.features.cmvn import stats_to_mean_istd
from fixtures import SR, tone
from recipe_helpers import EGS

STAGE3 = ["--train_set", "train", "--valid_set", "train", "--stage", "3", "--stop_stage", "3", "--force_stage", "3"]
OUT = "dump/fbank/org/train"


def stage3(d, *args, check=True):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # path.sh picks the recipe's bljust
    env["OMP_NUM_THREADS"] = "1"
    p = subprocess.run(["./asr.sh", *STAGE3, *args], cwd=d, env=env, capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"stage 3 {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return p


def one_pass_cmvn(d, scp):
    """cmvn.ark the way stage 3 made it before the jobs kept stats: a pass over every matrix."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(EGS))
    out = os.path.join(d, "one_pass.ark")
    subprocess.run([sys.executable, "-m", "bljust.bin.compute_cmvn", "--feats_scp", scp, "--out", out],
                   cwd=d, env=env, check=True, capture_output=True)
    return open(out, "rb").read()


def features(d):
    """Every matrix of feats.scp (its paths are relative to the recipe)."""
    rows = (line.split() for line in open(os.path.join(d, OUT, "feats.scp")))
    return {k: kaldiio.load_mat(os.path.join(d, v)) for k, v in rows}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("jobs") / "asr1")
    subprocess.run([os.path.join(EGS, "TEMPLATE", "asr1", "setup.sh"), d], check=True, capture_output=True)
    data = os.path.join(d, "data", "train")
    os.makedirs(os.path.join(data, "audio"))
    utts = [f"spk{i % 2}-u{i}" for i in range(7)]
    with open(os.path.join(data, "wav.scp"), "w") as f:
        for i, u in enumerate(utts):
            sf.write(os.path.join(data, "audio", u + ".wav"), tone(0.5 + 0.2 * i, i), SR, subtype="PCM_16")
            f.write(f"{u} {os.path.join(data, 'audio', u + '.wav')}\n")
    for name, line in (("text", "{u} a b\n"), ("utt2spk", "{u} {s}\n")):
        with open(os.path.join(data, name), "w") as f:
            f.writelines(line.format(u=u, s=u.split("-")[0]) for u in utts)
    with open(os.path.join(data, "spk2utt"), "w") as f:
        f.writelines(f"{s} {' '.join(u for u in utts if u.startswith(s))}\n" for s in ("spk0", "spk1"))
    return d


def test_one_and_two_jobs_give_the_same_features_and_cmvn(recipe):
    d = recipe
    cmvn = os.path.join(d, OUT, "cmvn.ark")
    stage3(d, "--nj", "1")
    one, cmvn1 = features(d), open(cmvn, "rb").read()
    assert "--stats" in open(os.path.join(d, OUT, "log", "compute_cmvn.log")).read()
    assert cmvn1 == one_pass_cmvn(d, os.path.join(OUT, "feats.scp"))  # bit for bit, as before
    stage3(d, "--nj", "2")
    two = features(d)
    assert sorted(two) == sorted(one) and all(np.array_equal(one[k], two[k]) for k in one)
    with open(os.path.join(d, "one_job.ark"), "wb") as f:
        f.write(cmvn1)
    a, b = kaldiio.load_mat(os.path.join(d, "one_job.ark")), kaldiio.load_mat(cmvn)
    np.testing.assert_allclose(b, a, rtol=1e-13)  # two jobs' sums added up: float64 rounding only
    assert b[0, -1] == a[0, -1]
    for x, y in zip(stats_to_mean_istd(a), stats_to_mean_istd(b)):  # what the model normalises with
        np.testing.assert_array_equal(x, y)


def test_speaker_cmvn_still_takes_global_stats_of_the_normalised_features(recipe):
    d = recipe
    stage3(d, "--nj", "2", "--cmvn_type", "speaker")
    assert "--feats_scp" in open(os.path.join(d, OUT, "log", "compute_cmvn.log")).read()
    stats = kaldiio.load_mat(os.path.join(d, OUT, "cmvn.ark"))
    np.testing.assert_allclose(stats[0, :-1] / stats[0, -1], 0, atol=1e-4)  # speaker-normalised: zero mean


def test_a_failing_job_fails_the_stage(recipe):
    d = recipe
    stage3(d, "--nj", "2")
    cmvn = os.path.join(d, OUT, "cmvn.ark")
    os.utime(cmvn, (1, 1))
    blocker = os.path.join(d, OUT, "data", "feats.2.ark.tmp")
    os.makedirs(blocker)  # job 2 cannot open its ark
    try:
        p = stage3(d, "--nj", "2", check=False)
    finally:
        os.rmdir(blocker)
    assert p.returncode != 0
    assert "extract_feats" in p.stderr and "Successfully finished" not in p.stderr, p.stderr[-2000:]
    assert not os.path.exists(os.path.join(d, OUT, ".done"))
    assert not os.path.exists(os.path.join(d, OUT, "data", "feats.2.done"))
    assert os.path.getmtime(cmvn) == 1  # neither merge nor CMVN ran on the failed jobs
    stage3(d, "--nj", "2")
    assert os.path.exists(os.path.join(d, OUT, ".done")) and os.path.getmtime(cmvn) > 1
